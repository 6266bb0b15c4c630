/*
 * Chatdesk chat page: progressive enhancement over the server-rendered form.
 *
 * Without this file the form posts to /send and the server redirects back to the
 * transcript. With it, messages go through the JSON API without reloading the page.
 *
 * Everything a customer or the model wrote is inserted with textContent, never parsed
 * as HTML: a reply is untrusted text even when it comes from our own server.
 * No inline styles or scripts either: the page's CSP allows only files from 'self'.
 */
(function () {
  "use strict";

  var root = document.getElementById("chat");
  var form = document.getElementById("composer");
  if (!root || !form || !window.fetch || !window.AbortController) {
    return; // the plain form keeps working
  }

  // A turn can run several model rounds and tool calls; past this the UI stops waiting.
  var REQUEST_TIMEOUT_MS = 120000;
  // Proxies drop idle WebSockets after about a minute.
  var LIVE_PING_MS = 30000;
  var LIVE_MAX_RETRIES = 6;
  // A message that failed on the way (network, timeout, 5xx, 503) is sent once more, with
  // the same id, so the server stores it once and answers it once.
  var RESEND_DELAY_MS = 1500;
  var RESEND_MAX_DELAY_MS = 10000;
  // While the server is still answering the first copy (409 turn_in_progress), ask again
  // after its Retry-After, this many times at most.
  var IN_PROGRESS_MAX_WAITS = 30;
  // A server that is restarting takes no new message (503 server_draining) and stores nothing;
  // another one will: sent again after its Retry-After, this many times at most, without
  // using up the one resend above.
  var DRAINING_MAX_RETRIES = 5;
  // The server closes with this when live updates are unavailable (Redis down;
  // chatdesk/conversations/live.py): the chat works on, and the page tries again every while.
  var LIVE_UNAVAILABLE = 4503;
  var LIVE_UNAVAILABLE_RETRY_MS = 10000;
  // Kept in step with the labels templates/chat.html renders for #mode.
  var MODES = {
    guided: ["Guided booking", "step by step, by number"],
    model: ["AI assistant", "ask in your own words"],
  };

  var transcript = document.getElementById("transcript");
  var typing = document.getElementById("typing");
  var announcer = document.getElementById("announcer");
  var errorBox = document.getElementById("error");
  var textarea = document.getElementById("message");
  var sendButton = document.getElementById("send");
  var modeBox = document.getElementById("mode");
  var counter = document.getElementById("counter");
  var hint = document.getElementById("composer-hint");

  var sessionId = root.dataset.session || "";
  // A call started from this page (voice.js) may create the conversation: keep typing in it.
  root.addEventListener("chatdesk:session", function (e) { sessionId = e.detail.session_id; });
  var maxChars = parseInt(root.dataset.maxChars, 10) || 2000;
  var phone = root.dataset.phone || "";
  var urls = { create: root.dataset.urlNew, message: root.dataset.urlMessage, live: root.dataset.urlLive };
  // Inside the website widget: the business's page the conversation starts on (chatdesk/web/widget.py).
  var newSession = root.dataset.widgetPage !== undefined ? { widget_page: root.dataset.widgetPage } : {};
  var busy = false;
  // The text and id of a message that failed: sent again unchanged, it keeps its id, since
  // the server may have stored it before failing.
  var unsent = null;
  // Whether a staff member is in the conversation: null until the server says.
  var staffActive = null;
  var live = null;
  var liveRetries = 0;
  var livePing = null;
  var liveNotice = null; // "live updates are unavailable", while they are
  // Staff messages on the page, by time and text: a reconnect adds only the ones it missed.
  var seenStaff = {};
  // The reply to the message being sent, as the model writes it (live `reply_delta` pushes):
  // { id: its message id, part, text, gap, bubble }. The answer to the POST replaces it.
  var writing = null;

  // --- DOM helpers (text only) -------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function whoLabel(role) {
    if (role === "customer") return "You";
    if (role === "staff") return "Staff";
    return "Assistant";
  }

  function appendMessage(role, text) {
    var item = el("li", "msg " + role);
    item.append(el("span", "who", whoLabel(role)), el("p", "text", text));
    transcript.append(item);
    return item;
  }

  function appendNotice(text) {
    var item = el("li", "notice");
    item.append(el("p", "", text));
    transcript.append(item);
    return item;
  }

  // A booking the page shows already has its card updated where it is (next to the reply
  // that first produced it); a new one goes right after `reply`.
  function showBooking(booking, reply) {
    return window.ChatdeskUI.showBooking(transcript, booking, reply);
  }

  function setMode(mode) {
    if (!mode || !MODES[mode] || modeBox.dataset.mode === mode) return false;
    modeBox.dataset.mode = mode;
    modeBox.className = "mode mode-" + mode;
    modeBox.replaceChildren(el("strong", "", MODES[mode][0]), " ", el("span", "mode-detail", MODES[mode][1]));
    return true;
  }

  function announce(text) {
    // Emptied first so the same words twice in a row are still read out.
    announcer.textContent = "";
    window.setTimeout(function () {
      announcer.textContent = text;
    }, 50);
  }

  function scrollToEnd() {
    // The page itself scrolls (the composer is sticky at the bottom), so the newest
    // message is at the end of the document.
    window.scrollTo(0, document.documentElement.scrollHeight);
  }

  // --- errors --------------------------------------------------------------------------

  function hideError() {
    errorBox.replaceChildren();
    errorBox.hidden = true;
  }

  function showError(message, action) {
    errorBox.replaceChildren(el("p", "", message));
    if (action) {
      var button = el("button", "button-inline", action.label);
      button.type = "button";
      button.addEventListener("click", action.run);
      errorBox.append(button);
    }
    errorBox.hidden = false;
  }

  function callUs() {
    return phone ? " or call us at " + phone : "";
  }

  function reportError(error) {
    var status = error.status;
    if (error.code === "conversation_closed" || error.code === "session_not_found") {
      showError(error.message, { label: "Start a new conversation", run: startOver });
    } else if (status === 429) {
      // The server's message says how long, once (rate_limits.wait_phrase).
      showError(error.message);
    } else if (status === 403) {
      showError(
        error.code === "csrf_failed"
          ? error.message
          : "Your session expired. Reload the page and try again."
      );
    } else if (error.code === "network") {
      showError("We couldn't reach the server. Check your connection and try again" + callUs() + ".");
    } else if (error.code === "timeout") {
      showError("This is taking too long. Please try again" + callUs() + ".");
    } else if (status >= 500 || !error.message) {
      showError("Something went wrong on our side. Please try again" + callUs() + ".");
    } else {
      showError(error.message);
    }
  }

  // --- the API -------------------------------------------------------------------------

  function ApiError(status, code, message, retryAfter) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.retryAfter = retryAfter;
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var input = form.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function post(url, body) {
    var controller = new AbortController();
    var timer = window.setTimeout(function () {
      controller.abort();
    }, REQUEST_TIMEOUT_MS);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: JSON.stringify(body || {}),
      signal: controller.signal,
    })
      .catch(function () {
        throw new ApiError(0, controller.signal.aborted ? "timeout" : "network", "", null);
      })
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return null; // e.g. an HTML error page from a proxy
          })
          .then(function (data) {
            if (response.ok && data) return data;
            var retry = parseInt(response.headers.get("Retry-After") || (data && data.retry_after) || "", 10);
            throw new ApiError(
              response.status,
              (data && data.error) || "http_" + response.status,
              data && typeof data.message === "string" ? data.message : "",
              isNaN(retry) ? null : retry
            );
          });
      })
      .finally(function () {
        window.clearTimeout(timer);
      });
  }

  function delay(ms) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, ms);
    });
  }

  // A random (version 4) UUID; crypto.randomUUID only exists on https and localhost.
  function newMessageId() {
    if (window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.from(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function sendMessage(body) {
    var resent = false;
    var waits = 0;
    var drainingRetries = 0;
    function attempt() {
      return post(urls.message, body).catch(function (error) {
        if (error.status === 409 && error.code === "turn_in_progress" && waits < IN_PROGRESS_MAX_WAITS) {
          waits++;
          return delay(1000 * (error.retryAfter || 2)).then(attempt);
        }
        if (error.status === 503 && error.code === "server_draining" && drainingRetries < DRAINING_MAX_RETRIES) {
          drainingRetries++;
          return delay(1000 * (error.retryAfter || 1)).then(attempt);
        }
        var transient = error.code === "network" || error.code === "timeout" || error.status >= 500;
        if (transient && !resent) {
          resent = true;
          var wait = error.retryAfter ? Math.min(1000 * error.retryAfter, RESEND_MAX_DELAY_MS) : RESEND_DELAY_MS;
          return delay(wait).then(attempt);
        }
        throw error;
      });
    }
    return attempt();
  }

  function startSession() {
    return post(urls.create, newSession).then(function (data) {
      sessionId = data.session_id;
      root.dataset.session = sessionId;
      setMode(data.mode);
      // The cookie now names the new conversation: listen to that one.
      staffActive = null;
      connectLive(true);
      return data;
    });
  }

  // --- the reply as it is written ------------------------------------------------------------
  // The server pushes the assistant's reply to our message piece by piece while the model
  // writes it. It is a preview: the bubble stays marked as being written (and the typing
  // indicator stays on) until the API's answer replaces its text with the stored reply.
  // Screen readers hear the reply once, from the answer.

  function startWriting(messageId) {
    writing = { id: messageId, part: -1, text: "", gap: false, bubble: null };
  }

  function showPiece(data) {
    if (!writing || data.message_id !== writing.id || typeof data.delta !== "string") return;
    if (data.part < writing.part) return;
    if (data.part > writing.part) {
      // A new model response in the turn: its text replaces the previous one's.
      writing.part = data.part;
      writing.text = "";
      writing.gap = false;
    }
    if (writing.gap || data.offset !== writing.text.length) {
      // A piece missed (the socket opened mid-reply): wait for the answer.
      writing.gap = true;
      return;
    }
    writing.text += data.delta;
    if (!writing.bubble) {
      writing.bubble = appendMessage("assistant", "");
      writing.bubble.classList.add("writing");
      writing.bubble.setAttribute("aria-busy", "true");
    }
    writing.bubble.classList.remove("broken");
    writing.bubble.querySelector(".text").textContent = writing.text;
    scrollToEnd();
  }

  function showBroken(data) {
    if (!writing || data.message_id !== writing.id || !writing.bubble) return;
    // The words so far will not be the reply: never leave them standing as if they were.
    writing.bubble.classList.add("broken");
    writing.bubble.querySelector(".text").textContent = "The reply was interrupted. One moment…";
    writing.text = "";
    writing.gap = true;
  }

  // The bubble to put the answer in (the one being written, if any), done being written.
  function finishWriting() {
    var bubble = writing && writing.bubble;
    writing = null;
    if (bubble) {
      bubble.classList.remove("writing", "broken");
      bubble.removeAttribute("aria-busy");
    }
    return bubble;
  }

  // --- staff replies, live ----------------------------------------------------------------
  // The server pushes what staff say (and whether one of them has taken over) over a
  // WebSocket; the assistant's final replies come back in the API response instead.

  function setStaffActive(active) {
    if (active === staffActive) return;
    var known = staffActive !== null;
    staffActive = active;
    if (!active && !known) return; // the usual start: nobody has joined
    var text = active
      ? "A member of our team has joined the chat and will reply here."
      : "Our team member has handed you back to the assistant.";
    appendNotice(text);
    announce(text);
    scrollToEnd();
  }

  function staffKey(at, text) {
    return (at || "") + "\n" + text;
  }

  // Shows a staff message once, whether it comes live or from the history after a reconnect.
  function showStaffMessage(text, at) {
    var key = staffKey(at, text);
    if (at && seenStaff[key]) return;
    if (at) seenStaff[key] = true;
    appendMessage("staff", text);
    announce("Staff: " + text);
    scrollToEnd();
  }

  // Messages staff sent while this page was not listening (before the socket opened, or
  // between a drop and the reconnect): the history has them all; show the unseen ones.
  function catchUp() {
    if (!sessionId) return;
    var url = "/api/v1/chat/session/" + encodeURIComponent(sessionId) + "/history";
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (!data || !Array.isArray(data.messages)) return;
        data.messages.forEach(function (message) {
          if (message.role === "staff" && typeof message.text === "string") showStaffMessage(message.text, message.at);
        });
      })
      .catch(function () {
        // The next reconnect tries again; the chat itself is unaffected.
      });
  }

  function setLiveUnavailable(unavailable) {
    if (!unavailable) {
      if (liveNotice) liveNotice.remove();
      liveNotice = null;
      return;
    }
    if (liveNotice) return;
    var text = "Live updates are unavailable right now. You can keep chatting; " +
      "replies from our team will appear here once they are back" + callUs() + ".";
    liveNotice = appendNotice(text);
    liveNotice.classList.add("live-unavailable");
    announce(text);
  }

  function onLiveMessage(event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (!data || typeof data !== "object") return;
    if (data.type === "takeover") {
      setStaffActive(Boolean(data.taken_over));
    } else if (data.type === "staff_message" && typeof data.text === "string") {
      showStaffMessage(data.text, data.at);
    } else if (data.type === "reply_delta") {
      showPiece(data);
    } else if (data.type === "reply_broken") {
      showBroken(data);
    }
  }

  function connectLive(restart) {
    if (!urls.live || !sessionId || !window.WebSocket) return;
    if (live) {
      if (!restart) return;
      var old = live;
      live = null; // so its close handler doesn't reconnect
      old.close();
    }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + urls.live);
    live = socket;
    socket.addEventListener("open", function () {
      liveRetries = 0;
      setLiveUnavailable(false);
      catchUp();
      window.clearInterval(livePing);
      livePing = window.setInterval(function () {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
      }, LIVE_PING_MS);
    });
    socket.addEventListener("message", onLiveMessage);
    socket.addEventListener("close", function (event) {
      if (live !== socket) return; // replaced on purpose
      live = null;
      window.clearInterval(livePing);
      // 4404: no open conversation for this cookie; nothing to listen to until a new one.
      if (event.code === 4404) return;
      if (event.code === LIVE_UNAVAILABLE) {
        // Not a failure of this page: say so, and keep trying until the server is back.
        setLiveUnavailable(true);
        window.setTimeout(connectLive, LIVE_UNAVAILABLE_RETRY_MS);
        return;
      }
      if (liveRetries >= LIVE_MAX_RETRIES) return;
      window.setTimeout(connectLive, 1000 * Math.pow(2, liveRetries++));
    });
  }

  // --- composing -------------------------------------------------------------------------

  function setBusy(value) {
    busy = value;
    // Only Send is disabled: the textarea keeps focus so the next message can be typed.
    sendButton.disabled = value;
    form.setAttribute("aria-busy", value ? "true" : "false");
  }

  function charCount(text) {
    return Array.from(text.trim()).length; // code points, as the server counts them
  }

  function updateCounter() {
    var count = charCount(textarea.value);
    if (count < maxChars * 0.8) {
      counter.hidden = true;
      return;
    }
    var over = count > maxChars;
    counter.textContent = count + " / " + maxChars + (over ? " — too long" : "");
    counter.classList.toggle("over", over);
    counter.hidden = false;
  }

  function restoreDraft(text) {
    // Anything typed while waiting is kept after the restored message.
    textarea.value = textarea.value ? text + "\n" + textarea.value : text;
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
    updateCounter();
  }

  function send() {
    if (busy) return;
    var text = textarea.value;
    if (!text.trim()) {
      textarea.focus();
      return;
    }
    setBusy(true);
    hideError();
    var bubble = appendMessage("customer", text.trim());
    textarea.value = "";
    updateCounter();
    typing.hidden = false;
    scrollToEnd();
    textarea.focus();

    var ready = sessionId
      ? Promise.resolve()
      : startSession().then(function (data) {
          // The greeting was rendered before the session existed; show the one it got.
          var greeting = transcript.querySelector("li[data-greeting] .text");
          if (greeting && data.greeting) greeting.textContent = data.greeting;
        });
    var messageId = unsent && unsent.text === text ? unsent.id : newMessageId();
    unsent = null;
    startWriting(messageId);
    ready
      .then(function () {
        return sendMessage({ session_id: sessionId, message: text, message_id: messageId });
      })
      .then(function (data) {
        var written = finishWriting();
        if (data.paused) {
          // Staff have the conversation: they answer over the live connection.
          if (written) written.remove();
          setStaffActive(true);
          return;
        }
        var reply = written || appendMessage("assistant", "");
        reply.querySelector(".text").textContent = data.reply;
        var spoken = "Assistant: " + data.reply;
        (data.bookings || []).forEach(function (booking) {
          if (showBooking(booking, reply)) {
            spoken += " " + (booking.headline || "Booking") + ": " + booking.booking_number + ".";
          }
        });
        if (setMode(data.mode)) spoken += " Now in " + MODES[data.mode][0] + " mode.";
        announce(spoken);
      })
      .catch(function (error) {
        // The server did not answer the message: take the bubbles back, give the text back.
        var written = finishWriting();
        if (written) written.remove();
        bubble.remove();
        restoreDraft(text);
        unsent = { text: textarea.value, id: messageId };
        reportError(error instanceof ApiError ? error : new ApiError(0, "client", "", null));
      })
      .finally(function () {
        typing.hidden = true;
        setBusy(false);
        scrollToEnd();
        textarea.focus();
      });
  }

  function startOver() {
    if (busy) return;
    setBusy(true);
    hideError();
    startSession()
      .then(function (data) {
        transcript.replaceChildren();
        appendMessage("assistant", data.greeting);
        announce("New conversation. Assistant: " + data.greeting);
      })
      .catch(reportError)
      .finally(function () {
        setBusy(false);
        scrollToEnd();
        textarea.focus();
      });
  }

  // --- opening hours: "Monday: 08:00-18:00; Tuesday: ..." -> "Mon–Fri 08:00–18:00 · ..."

  function compactHours() {
    var box = document.getElementById("hours");
    if (!box) return;
    var full = box.textContent.trim();
    var days = full.split(";").map(function (part) {
      var at = part.indexOf(":");
      return at > 0 ? [part.slice(0, at).trim(), part.slice(at + 1).trim()] : null;
    });
    if (days.length !== 7 || days.some(function (day) { return !day; })) return; // not the format we know
    var groups = [];
    days.forEach(function (day) {
      var last = groups[groups.length - 1];
      if (last && last.hours === day[1]) last.to = day[0];
      else groups.push({ from: day[0], to: day[0], hours: day[1] });
    });
    box.textContent = groups
      .map(function (group) {
        var span = group.from.slice(0, 3) + (group.to !== group.from ? "–" + group.to.slice(0, 3) : "");
        // No-break spaces keep each "Sat 09:00–14:00" together when the line wraps.
        return span + "\u00a0" + group.hours.replace(/(\d)-(\d)/g, "$1–$2").replace(/ /g, "\u00a0");
      })
      .join(" · ");
    box.title = full;
  }

  // --- wiring ----------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    send();
  });

  textarea.addEventListener("keydown", function (event) {
    // Enter sends, Shift+Enter is a new line; never while an IME is composing a word.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    }
  });

  textarea.addEventListener("input", updateCounter);

  document.documentElement.classList.add("js");
  hint.textContent = "Enter to send, Shift+Enter for a new line.";
  compactHours();
  Array.prototype.forEach.call(transcript.querySelectorAll("li.msg.staff[data-at]"), function (item) {
    seenStaff[staffKey(item.dataset.at, item.querySelector(".text").textContent)] = true;
  });
  updateCounter();
  scrollToEnd();
  connectLive(false);
  // Focus on load only with a mouse/keyboard: on phones it would pop the keyboard over the page.
  if (!errorBox.hidden || textarea.value || window.matchMedia("(pointer: fine)").matches) {
    textarea.focus({ preventScroll: true });
  }
  // Tests and support look for this to know the enhanced page is running.
  root.dataset.enhanced = "true";
})();
