/*
 * Chatdesk voice calls in the browser: microphone -> our server -> OpenAI Realtime and back.
 *
 * The wire format is voice/PROTOCOL.md. This file only ever talks to our own server
 * (same origin, ws: or wss: like the page), which holds the OpenAI key.
 *
 * - Capture: getUserMedia (echo cancellation, noise suppression, auto gain) into an
 *   AudioWorklet (static/voice-capture-worklet.js) that resamples to 24 kHz mono and packs
 *   PCM16 LE frames of 40 ms; they go out as binary WebSocket frames once the server says
 *   `ready`, and not at all while muted.
 * - Playback: the assistant's PCM16 24 kHz chunks are scheduled back to back as
 *   AudioBufferSourceNodes with a small lead, so network jitter doesn't make gaps. We track
 *   per assistant item how much the speaker has actually played and report it (`playback`)
 *   so the server can cut the model's memory of the reply where the caller stopped hearing
 *   it; on `flush` (barge-in) all queued audio stops at once.
 * - Transcript: both sides go into the page's #transcript list, the same list the typed
 *   chat uses, built with textContent only (server text is never parsed as HTML).
 *
 * The page provides #voice (with data-voice-enabled, data-url-call, data-url-worklet) and
 * #transcript; #message (the chat text box) is optional. No inline scripts or styles: the
 * CSP allows only files from 'self'.
 */
(function () {
  "use strict";

  var root = document.getElementById("voice");
  var transcript = document.getElementById("transcript");
  if (!root || !transcript) return;

  var SAMPLE_RATE = 24000;
  var BYTES_PER_MS = (SAMPLE_RATE * 2) / 1000;
  // Playback starts this far ahead of "now" after a pause: room for network jitter.
  var START_LEAD_S = 0.12;
  // A chunk that would start sooner than this is late: restart with the lead above.
  var LATE_MARGIN_S = 0.02;
  // Progress is sent this often while audio plays (the protocol asks for <= 250 ms).
  var REPORT_EVERY_MS = 200;
  var TICK_MS = 100;
  var PING_EVERY_MS = 15000;
  var READY_TIMEOUT_MS = 20000;
  // On a stalled connection, drop microphone frames rather than queue them: audio that
  // arrives seconds late is worse than a gap. 1 s of audio.
  var MAX_BUFFERED_BYTES = SAMPLE_RATE * 2;
  // After `hangup`, give the server this long to close the socket itself.
  var HANGUP_GRACE_MS = 1500;

  var STATE_LABELS = {
    idle: "Ready to call",
    starting: "Waiting for the microphone…",
    connecting: "Connecting…",
    listening: "Listening",
    thinking: "Thinking…",
    speaking: "Speaking",
    ending: "Ending the call…",
  };

  var END_MESSAGES = {
    idle: "The call ended because we didn't hear anything for a while.",
    max_duration: "The call reached its time limit.",
    limit_reached: "This conversation reached its limit for calls.",
    upstream_error: "The voice service stopped responding.",
    server_shutdown: "We had to end the call because our server is restarting. Please call again.",
    bad_frame: "The call ended because of a technical problem.",
    voice_unavailable: "Voice calls aren't available right now.",
    server_error: "Something went wrong on our side.",
  };

  var CLOSE_MESSAGES = {
    4403: "This page isn't allowed to place calls. Reload the page and try again.",
    4408: END_MESSAGES.idle,
    4409: END_MESSAGES.max_duration,
    4413: END_MESSAGES.bad_frame,
    4400: END_MESSAGES.bad_frame,
    4429: "Too many calls right now. Please try again in a little while.",
    4503: END_MESSAGES.voice_unavailable,
    1011: END_MESSAGES.server_error,
    1012: END_MESSAGES.server_shutdown,
  };

  var callButton = document.getElementById("call-button");
  var activeBox = document.getElementById("call-active");
  var statusBox = document.getElementById("call-status");
  var timerBox = document.getElementById("call-timer");
  var levelBox = document.getElementById("call-level");
  var muteButton = document.getElementById("call-mute");
  var endButton = document.getElementById("call-end");
  var noteBox = document.getElementById("call-note");
  var announcer = document.getElementById("announcer");
  // On the chat page the session id lives on #chat, where static/chat.js reads it.
  var chatRoot = document.getElementById("chat");

  var enabled = root.dataset.voiceEnabled === "true";
  var call = null; // the call in progress, see startCall()

  // --- small helpers -------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function textBox() {
    var box = document.getElementById("message");
    return box && !box.disabled ? box : null;
  }

  function scrollToEnd() {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }

  function announce(text) {
    if (!announcer) return;
    announcer.textContent = "";
    window.setTimeout(function () {
      announcer.textContent = text;
    }, 50);
  }

  function showNote(message, options) {
    options = options || {};
    noteBox.replaceChildren(el("span", "call-note-text", message));
    noteBox.classList.toggle("call-note-error", !!options.error);
    var box = textBox();
    if (options.offerText) {
      if (box) {
        var typeButton = el("button", "call-note-action", "Type instead");
        typeButton.type = "button";
        typeButton.addEventListener("click", function () {
          box.focus();
        });
        noteBox.append(" ", typeButton);
      } else if (root.dataset.urlText) {
        var link = el("a", "call-note-action", "Type instead");
        link.href = root.dataset.urlText;
        noteBox.append(" ", link);
      }
    }
    noteBox.hidden = false;
    if (options.focusText && box) box.focus();
  }

  function hideNote() {
    noteBox.replaceChildren();
    noteBox.hidden = true;
  }

  function formatTime(ms) {
    var seconds = Math.max(0, Math.floor(ms / 1000));
    var minutes = Math.floor(seconds / 60);
    seconds -= minutes * 60;
    return minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
  }

  // --- the conversation this call belongs to ----------------------------------------------

  function currentSession() {
    return (chatRoot ? chatRoot.dataset.session : root.dataset.session) || "";
  }

  function adoptSession(sessionId) {
    if (!sessionId || currentSession() === sessionId) return;
    root.dataset.session = sessionId;
    if (chatRoot) {
      // chat.js keeps the id on #chat; the event tells it right away, so what the customer
      // types next goes into the conversation the call is part of.
      chatRoot.dataset.session = sessionId;
      chatRoot.dispatchEvent(new CustomEvent("chatdesk:session", { detail: { session_id: sessionId } }));
    }
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  /*
   * The server finds the conversation to continue through the signed session cookie sent
   * with the WebSocket handshake. Without one (or when the customer hasn't said anything in
   * it yet), the call starts a new voice conversation and `ready` carries its session id. A
   * WebSocket can't set a cookie, so the page posts that id back to get the cookie: typing
   * after the call and reloading the page then continue the call's conversation. Nothing is
   * created before the call: a call that never connects leaves no empty conversation behind.
   */
  function keepSession(sessionId) {
    var url = root.dataset.urlSession;
    if (!sessionId || !url || !window.fetch) return;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ session_id: sessionId }),
    }).catch(function () {});
  }

  // --- UI state --------------------------------------------------------------------------

  function showState(state) {
    root.dataset.callState = state;
    // Muted wins over "Listening": the caller must not think we can hear them.
    var muted = call && call.muted && (state === "listening" || state === "thinking");
    statusBox.textContent = muted ? "Muted" : STATE_LABELS[state] || state;
    var inCall = state !== "idle";
    callButton.hidden = inCall;
    activeBox.hidden = !inCall;
    muteButton.disabled = !call || !call.ready;
  }

  function displayState() {
    if (!call) return "idle";
    if (call.ending) return "ending";
    if (!call.ready) return call.ws ? "connecting" : "starting";
    // Audio still coming out of the speaker wins over what the server last said.
    if (call.ctx && call.playHead > outputClock(call.ctx)) return "speaking";
    // Before any state after `ready`, the line is open: listening.
    return call.serverState && call.serverState !== "connecting" ? call.serverState : "listening";
  }

  function refreshState() {
    var state = displayState();
    if (root.dataset.callState !== state) showState(state);
  }

  function setLevel(peak) {
    // Peak amplitude -> 0..5 bars, roughly 6 dB apart; CSS draws them from data-level.
    var level = peak > 0.5 ? 5 : peak > 0.25 ? 4 : peak > 0.12 ? 3 : peak > 0.05 ? 2 : peak > 0.015 ? 1 : 0;
    if (levelBox.dataset.level !== String(level)) levelBox.dataset.level = String(level);
  }

  // --- transcript --------------------------------------------------------------------------

  function whoLabel(role) {
    return role === "customer" ? "You" : "Assistant";
  }

  function newLine(role, itemId) {
    var item = el("li", "msg " + role + " voice live");
    item.dataset.itemId = itemId;
    var who = el("span", "who", whoLabel(role));
    who.append(el("span", "via", " · call"));
    item.append(who, el("p", "text"));
    return item;
  }

  /*
   * The caller's words are transcribed while the model is already answering, so their
   * transcript can arrive after the assistant's line has started. When the server says the
   * caller finished a turn (listening -> thinking, or a barge-in), the next assistant line
   * becomes an anchor and a late customer line is put before it, where it was said.
   */
  function onTranscript(message) {
    var role = message.role === "customer" ? "customer" : "assistant";
    var itemId = String(message.item_id || role + "-" + Date.now());
    var line = call.lines.get(itemId);
    if (!line) {
      line = newLine(role, itemId);
      call.lines.set(itemId, line);
      if (role === "customer") {
        var anchor = call.anchor;
        if (anchor && anchor.parentNode === transcript) transcript.insertBefore(line, anchor);
        else transcript.append(line);
        call.anchor = null;
        call.customerTurnPending = false;
      } else {
        if (call.customerTurnPending && !call.anchor) call.anchor = line;
        transcript.append(line);
      }
    }
    var text = line.querySelector(".text");
    if (message.final) {
      text.textContent = String(message.text || "");
      line.classList.remove("live");
      if (message.interrupted) {
        line.classList.add("interrupted");
        line.querySelector(".via").textContent = " · call, interrupted";
      }
      if (!text.textContent.trim()) dropLine(itemId, line);
    } else {
      text.textContent += String(message.text || "");
    }
    scrollToEnd();
  }

  function dropLine(itemId, line) {
    call.lines.delete(itemId);
    if (call.anchor === line) call.anchor = null;
    line.remove();
  }

  function settleLines() {
    // At the end of a call, half-finished lines keep what was said; empty ones go.
    call.lines.forEach(function (line, itemId) {
      line.classList.remove("live");
      if (!line.querySelector(".text").textContent.trim()) dropLine(itemId, line);
    });
  }

  function appendBooking(booking) {
    if (!window.ChatdeskUI.appendBooking(transcript, booking)) return false;
    scrollToEnd();
    return true;
  }

  // --- playback ------------------------------------------------------------------------------

  /*
   * The time (in AudioContext seconds) of the sample the speaker is emitting now. currentTime
   * is what has been rendered, which runs ahead of the speaker by the output latency.
   */
  function outputClock(ctx) {
    var rendered = ctx.currentTime;
    if (typeof ctx.getOutputTimestamp === "function") {
      var stamp = ctx.getOutputTimestamp();
      if (stamp && stamp.contextTime > 0 && stamp.performanceTime > 0) {
        var estimate = stamp.contextTime + (performance.now() - stamp.performanceTime) / 1000;
        return Math.min(estimate, rendered);
      }
    }
    return Math.max(0, rendered - (ctx.outputLatency || 0));
  }

  function playbackItem(itemId) {
    var item = call.items.get(itemId);
    if (!item) {
      // Counted in samples, not seconds: ten 0.1 s chunks must add up to 1000 ms, not 999
      // (the server compares played_ms with the audio it sent to tell "heard it all").
      item = { id: itemId, doneSamples: 0, chunks: [], reportedMs: -1 };
      call.items.set(itemId, item);
    }
    return item;
  }

  function chunkPlayed(chunk, clock) {
    if (clock >= chunk.start + chunk.duration) return chunk.samples;
    return Math.min(chunk.samples, Math.max(0, Math.floor((clock - chunk.start) * SAMPLE_RATE)));
  }

  function samplesToMs(samples) {
    return Math.floor((samples * 1000) / SAMPLE_RATE);
  }

  function playedMs(item, clock) {
    var samples = item.doneSamples;
    for (var i = 0; i < item.chunks.length; i++) samples += chunkPlayed(item.chunks[i], clock);
    return samplesToMs(samples);
  }

  function onAudio(data) {
    // Audio without a current item (before `audio_item`, or after a flush) must not play.
    if (!call.currentItem || !call.playbackGain) return;
    var samples = Math.floor(data.byteLength / 2);
    if (!samples) return;
    var view = new DataView(data, 0, samples * 2);
    var floats = new Float32Array(samples);
    for (var i = 0; i < samples; i++) floats[i] = view.getInt16(i * 2, true) / 32768;
    var ctx = call.ctx;
    // The buffer keeps its own 24 kHz rate; the context resamples it to the device rate.
    var buffer = ctx.createBuffer(1, samples, SAMPLE_RATE);
    buffer.copyToChannel(floats, 0);
    var source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(call.playbackGain);
    var now = ctx.currentTime;
    if (call.playHead < now + LATE_MARGIN_S) call.playHead = now + START_LEAD_S;
    source.start(call.playHead);
    var item = playbackItem(call.currentItem);
    item.chunks.push({ start: call.playHead, duration: buffer.duration, samples: samples, source: source });
    call.playHead += buffer.duration;
    refreshState();
  }

  function sendPlayback(item, ms) {
    item.reportedMs = ms;
    send({ type: "playback", item_id: item.id, played_ms: ms });
  }

  // Fold finished chunks into the item totals, report progress, forget finished items.
  function updatePlayback(force) {
    if (!call || !call.ctx) return;
    var clock = outputClock(call.ctx);
    var total = call.playedBeforeMs;
    var now = performance.now();
    var due = force || now - call.lastReportAt >= REPORT_EVERY_MS;
    call.items.forEach(function (item, itemId) {
      item.chunks = item.chunks.filter(function (chunk) {
        if (chunk.start + chunk.duration > clock) return true;
        item.doneSamples += chunk.samples;
        return false;
      });
      var ms = playedMs(item, clock);
      total += ms;
      if (due && ms !== item.reportedMs) sendPlayback(item, ms);
      var finished = !item.chunks.length && item.reportedMs === ms && itemId !== call.currentItem;
      if (finished) {
        call.playedBeforeMs += ms;
        call.items.delete(itemId);
      }
    });
    if (due) call.lastReportAt = now;
    root.dataset.playedMs = String(total);
  }

  // Barge-in or hang-up: silence everything queued now and say how far each item got.
  function stopPlayback() {
    if (!call.ctx) return;
    var clock = outputClock(call.ctx);
    call.items.forEach(function (item, itemId) {
      var cut = item.chunks.length > 0 || itemId === call.currentItem;
      item.chunks.forEach(function (chunk) {
        item.doneSamples += chunkPlayed(chunk, clock);
        try {
          chunk.source.stop();
        } catch (error) {
          // already stopped: nothing to silence
        }
        chunk.source.disconnect();
      });
      item.chunks = [];
      var ms = samplesToMs(item.doneSamples);
      // The interrupted item is always reported, even at an unchanged value: the server
      // waits for this report to cut the reply where the caller stopped hearing it.
      if (cut || ms !== item.reportedMs) sendPlayback(item, ms);
      call.playedBeforeMs += ms;
    });
    call.items.clear();
    call.playHead = 0;
    call.currentItem = null;
    root.dataset.playedMs = String(call.playedBeforeMs);
  }

  // --- the socket ------------------------------------------------------------------------------

  function send(message) {
    if (call && call.ws && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify(message));
  }

  function callUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + root.dataset.urlCall;
  }

  function onFrame(event) {
    var data = event.data || {};
    if (!call || !data.pcm) return;
    if (typeof data.level === "number") setLevel(call.muted ? 0 : data.level);
    var ws = call.ws;
    if (!call.ready || call.muted || call.ending || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      call.droppedFrames += 1;
      return;
    }
    ws.send(data.pcm);
    call.sentBytes += data.pcm.byteLength;
    root.dataset.sentMs = String(Math.round(call.sentBytes / BYTES_PER_MS));
  }

  function onMessage(event) {
    if (!call || event.target !== call.ws) return;
    if (typeof event.data !== "string") {
      onAudio(event.data);
      return;
    }
    var message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return; // not ours to crash on; the server never sends this
    }
    if (!message || typeof message !== "object") return;
    switch (message.type) {
      case "ready":
        onReady(message);
        break;
      case "state":
        onServerState(String(message.state || ""));
        break;
      case "audio_item":
        call.currentItem = String(message.item_id || "");
        playbackItem(call.currentItem);
        if (root.dataset.callNotice) {
          // The assistant is talking again: the apology has done its job.
          delete root.dataset.callNotice;
          hideNote();
        }
        break;
      case "notice":
        // One reply failed; the call goes on. Say so, or the caller just hears silence.
        root.dataset.callNotice = String(message.code || "notice");
        showNote(String(message.message || "Sorry, something went wrong. Please say that again."));
        break;
      case "flush":
        call.customerTurnPending = true;
        call.anchor = null;
        stopPlayback();
        refreshState();
        break;
      case "transcript":
        onTranscript(message);
        break;
      case "booking":
        if (message.booking && appendBooking(message.booking)) {
          announce((message.booking.headline || "Booking confirmed") + ": " + message.booking.booking_number + ".");
        }
        break;
      case "error":
        call.errorShown = true;
        showNote(String(message.message || "Something went wrong with the call."), {
          error: true,
          offerText: message.fallback === "chat",
          focusText: message.fallback === "chat",
        });
        break;
      case "ended":
        call.endReason = String(message.reason || "");
        break;
      default:
        break; // pong, tool, and anything newer than this page
    }
  }

  function onReady(message) {
    call.ready = true;
    call.readyAt = performance.now();
    window.clearTimeout(call.readyTimer);
    // The conversation the page already had, or the new one the call started.
    var sessionId = String(message.session_id || "");
    var started = sessionId && sessionId !== currentSession();
    adoptSession(sessionId);
    if (started) keepSession(sessionId);
    if (message.conversation_number) root.dataset.conversation = String(message.conversation_number);
    muteButton.disabled = false;
    hideNote();
    refreshState();
    announce("Call connected.");
  }

  function onServerState(state) {
    if (!STATE_LABELS[state]) return;
    if (state === "thinking" && call.serverState === "listening") {
      // The caller just finished a turn: their transcript may come after our answer starts.
      call.customerTurnPending = true;
      call.anchor = null;
    }
    call.serverState = state;
    refreshState();
  }

  function onClose(event) {
    if (!call || event.target !== call.ws) return;
    var current = call;
    var message = "";
    if (!current.userEnded && !current.errorShown) {
      if (current.endReason && current.endReason !== "customer_hung_up") {
        message = END_MESSAGES[current.endReason] || "The call ended.";
      } else if (CLOSE_MESSAGES[event.code]) {
        message = CLOSE_MESSAGES[event.code];
      } else if (!current.ready) {
        message = "We couldn't connect the call.";
      } else if (event.code !== 1000) {
        message = "The call was cut off.";
      }
    }
    finish();
    if (message) {
      showNote(message + " You can keep typing instead.", { error: true, offerText: true, focusText: true });
    } else if (!current.errorShown) {
      showNote("Call ended.");
      var box = textBox();
      if (box && window.matchMedia("(pointer: fine)").matches) box.focus({ preventScroll: true });
      else callButton.focus({ preventScroll: true });
    }
    // The note above is a status region: screen readers read it, no separate announcement.
  }

  // --- starting and ending -------------------------------------------------------------------

  function microphoneMessage(error) {
    var name = (error && error.name) || "";
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      return (
        "The microphone is blocked for this site. Allow it in your browser's site settings " +
        "(the icon next to the address), then press Call again."
      );
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      return "We couldn't find a microphone. Plug one in or turn it on, then press Call again.";
    }
    if (name === "NotReadableError" || name === "AbortError" || name === "TrackStartError") {
      return "Your microphone is busy or couldn't start. Close other apps using it, then press Call again.";
    }
    return "We couldn't start your microphone.";
  }

  async function startCall() {
    if (call) return;
    hideNote();
    if (!enabled) {
      showNote(
        "Voice calls are switched off on this site: they need the server's OPENAI_API_KEY setting. " +
          "You can type your message instead.",
        { offerText: true, focusText: true }
      );
      return;
    }
    var AudioCtx = window.AudioContext || window.webkitAudioContext;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !AudioCtx || !window.AudioWorkletNode) {
      showNote(
        window.isSecureContext === false
          ? "Calls need a secure (https) connection to use your microphone."
          : "This browser can't make calls.",
        { error: true, offerText: true }
      );
      return;
    }
    call = {
      ws: null,
      ctx: null,
      stream: null,
      node: null,
      source: null,
      playbackGain: null,
      ready: false,
      readyAt: 0,
      ending: false,
      userEnded: false,
      errorShown: false,
      endReason: "",
      serverState: "",
      muted: false,
      currentItem: null,
      items: new Map(),
      playHead: 0,
      playedBeforeMs: 0,
      lastReportAt: 0,
      lines: new Map(),
      anchor: null,
      customerTurnPending: false,
      sentBytes: 0,
      droppedFrames: 0,
      timers: [],
      readyTimer: 0,
    };
    var current = call;
    root.dataset.playedMs = "0";
    root.dataset.sentMs = "0";
    setMuted(false);
    showState("starting");
    endButton.focus({ preventScroll: true });

    // Created inside the click so browsers let it play sound.
    current.ctx = new AudioCtx({ latencyHint: "interactive" });
    current.ctx.resume().catch(function () {});
    // Playback is ready before the socket opens: the greeting can arrive before the
    // capture worklet has loaded.
    current.playbackGain = current.ctx.createGain();
    current.playbackGain.connect(current.ctx.destination);
    try {
      current.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
        video: false,
      });
    } catch (error) {
      if (call !== current) return;
      finish();
      showNote(microphoneMessage(error), { error: true, offerText: true });
      return;
    }
    if (call !== current || current.ending) {
      finish(current);
      return;
    }
    openSocket(current);
    try {
      await current.ctx.audioWorklet.addModule(root.dataset.urlWorklet);
      if (call !== current) return;
      var ctx = current.ctx;
      current.source = ctx.createMediaStreamSource(current.stream);
      current.node = new AudioWorkletNode(ctx, "chatdesk-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        // Let the graph mix the microphone down to mono before the processor sees it.
        channelCount: 1,
        channelCountMode: "explicit",
        channelInterpretation: "speakers",
        processorOptions: { targetRate: SAMPLE_RATE, frameSamples: 960 },
      });
      current.node.port.onmessage = onFrame;
      current.source.connect(current.node);
      // The processor writes nothing to its output, so this is silent; being connected to
      // the destination is what makes every browser keep calling process().
      current.node.connect(ctx.destination);
    } catch (error) {
      if (call !== current) return;
      finish();
      showNote("We couldn't start the call audio in this browser.", { error: true, offerText: true });
      return;
    }
    current.timers.push(window.setInterval(tick, TICK_MS));
    current.timers.push(
      window.setInterval(function () {
        send({ type: "ping" });
      }, PING_EVERY_MS)
    );
  }

  function openSocket(current) {
    var ws = new WebSocket(callUrl());
    ws.binaryType = "arraybuffer";
    current.ws = ws;
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", onClose);
    current.readyTimer = window.setTimeout(function () {
      if (call === current && !current.ready) ws.close(1000, "no answer");
    }, READY_TIMEOUT_MS);
    refreshState();
  }

  function tick() {
    if (!call) return;
    updatePlayback(false);
    refreshState();
    if (call.ready) timerBox.textContent = formatTime(performance.now() - call.readyAt);
  }

  function setMuted(muted) {
    if (call) {
      call.muted = muted;
      if (call.node) call.node.port.postMessage({ muted: muted });
    }
    muteButton.setAttribute("aria-pressed", muted ? "true" : "false");
    muteButton.textContent = muted ? "Unmute" : "Mute";
    root.classList.toggle("call-muted", muted);
    if (muted) setLevel(0);
    showState(displayState());
  }

  function endCall() {
    if (!call || call.ending) return;
    var current = call;
    current.ending = true;
    current.userEnded = true;
    refreshState();
    if (!current.ws || current.ws.readyState !== WebSocket.OPEN) {
      if (current.ws && current.ws.readyState === WebSocket.CONNECTING) current.ws.close(1000);
      finish();
      showNote("Call ended.");
      return;
    }
    // Tell the server how far the reply got before the line goes quiet, then hang up.
    stopPlayback();
    send({ type: "hangup" });
    stopCapture(current);
    window.setTimeout(function () {
      if (current.ws.readyState !== WebSocket.CLOSED) current.ws.close(1000, "hangup");
    }, HANGUP_GRACE_MS);
  }

  function stopCapture(current) {
    if (current.node) {
      current.node.port.postMessage({ stop: true });
      current.node.port.onmessage = null;
      current.node.disconnect();
    }
    if (current.source) current.source.disconnect();
    if (current.stream) {
      current.stream.getTracks().forEach(function (track) {
        track.stop();
      });
    }
    setLevel(0);
  }

  // Release everything; the page goes back to "Call" and the text box keeps working.
  function finish(which) {
    var current = which || call;
    if (!current) return;
    current.timers.forEach(window.clearInterval);
    window.clearTimeout(current.readyTimer);
    var wasActive = call === current;
    if (wasActive) {
      delete root.dataset.callNotice;
      if (current.ctx && current.ctx.state !== "closed") updatePlayback(true);
      settleLines();
      call = null;
    }
    stopCapture(current);
    if (current.ws && current.ws.readyState < WebSocket.CLOSING) current.ws.close(1000);
    if (current.ctx && current.ctx.state !== "closed") current.ctx.close().catch(function () {});
    if (wasActive || !call) {
      timerBox.textContent = "";
      setMuted(false);
      showState("idle");
    }
  }

  // --- wiring ------------------------------------------------------------------------------------

  callButton.addEventListener("click", function () {
    startCall();
  });
  endButton.addEventListener("click", endCall);
  muteButton.addEventListener("click", function () {
    if (call && call.ready) setMuted(!call.muted);
  });
  window.addEventListener("pagehide", function () {
    if (call && call.ws && call.ws.readyState === WebSocket.OPEN) {
      send({ type: "hangup" });
      call.ws.close(1000, "page closed");
    }
  });

  root.hidden = false;
  showState("idle");
  // Tests and support look for this to know the call control is running.
  root.dataset.ready = "true";
})();
