// Staff live monitor: keeps the open-conversations table current over the staff
// WebSocket, shows one conversation in full, and takes over / replies / hands back
// through the staff API. Server text is only ever set with textContent.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root) return;
  const csrf = root.dataset.csrf;
  // Staff without the takeover permission watch only (the API would refuse them anyway).
  const mayTakeOver = root.dataset.takeover === "1";
  const rows = document.getElementById("conversations");
  const detail = document.getElementById("detail");
  const title = document.getElementById("detail-title");
  const transcript = document.getElementById("transcript");
  const takeover = document.getElementById("takeover");
  const release = document.getElementById("release");
  const reply = document.getElementById("reply");
  const replyText = document.getElementById("reply-text");
  const error = document.getElementById("error");
  const status = document.getElementById("status");
  let socket = null;
  let watching = null;

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function customerCell(c) {
    const td = document.createElement("td");
    td.className = "customer";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.customer_name || "–";
    td.append(name);
    if (c.wants_person) {
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = "Wants a person";
      td.append(flag);
    }
    return td;
  }

  // Null for staff who may not see costs (chatdesk.conversations.access).
  function costText(cost) {
    return cost === null || cost === undefined ? "–" : "$" + cost;
  }

  // A pushed summary (already shaped for this staff member by the server) shows at once in
  // its row; the refresh that follows brings what a summary does not carry.
  function applySummary(s) {
    const tr = rows.querySelector('tr[data-number="' + CSS.escape(s.number) + '"]');
    if (!tr) return;
    const set = function (selector, text) { const td = tr.querySelector(selector); if (td) td.textContent = text; };
    set("td.count", String(s.message_count));
    set("td.bookings", String(s.booking_count));
    set("td.cost", costText(s.cost_usd));
    set("td.state", s.taken_over ? "staff" : s.mode);
    tr.classList.remove("flash");
    void tr.offsetWidth;
    tr.classList.add("flash");
    if (watching === s.number) setTakenOver(s.taken_over);
  }

  function row(c) {
    const tr = document.createElement("tr");
    tr.dataset.number = c.number;
    tr.tabIndex = 0;
    if (c.wants_person) tr.classList.add("wants-person");
    if (c.number === watching) tr.classList.add("selected");
    const number = cell(c.number, "number");
    const channel = document.createElement("span");
    channel.className = "sub";
    channel.textContent = c.channel;
    number.append(channel);
    const activity = document.createElement("td");
    activity.className = "activity";
    const when = document.createElement("time");
    when.dateTime = c.last_activity_at;
    when.title = c.last_activity_local;
    when.textContent = c.last_activity_short;
    activity.append(when);
    tr.append(
      number, customerCell(c), activity, cell(String(c.message_count), "count"),
      cell(String(c.booking_count), "bookings"), cell(costText(c.cost_usd), "cost"),
      cell(c.taken_over ? "staff" : c.mode, "state"));
    return tr;
  }

  // The socket says that a conversation changed; the list itself comes from the staff API,
  // which decides what this staff member may see (names), who waits for a person, and which
  // quiet conversations stay hidden. Bursts of changes cost one request.
  const quiet = root.dataset.quiet === "1";
  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;

  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, 300);
  }

  async function refresh() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    try {
      const data = await api("GET", "/api/v1/staff/conversations/open?quiet=" + (quiet ? "1" : "0"));
      const changed = new Set();
      rows.querySelectorAll("tr[data-number]").forEach(function (r) { changed.add(r.dataset.number + "|" + r.textContent); });
      const fresh = data.conversations.map(row);
      if (fresh.length === 0) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = cell("No open conversations.");
        td.colSpan = 7;
        tr.append(td);
        fresh.push(tr);
      }
      rows.replaceChildren.apply(rows, fresh);
      fresh.forEach(function (r) {
        if (r.dataset.number && !changed.has(r.dataset.number + "|" + r.textContent)) r.classList.add("flash");
      });
      updateQuietToggle(data);
      const current = data.conversations.find(function (c) { return c.number === watching; });
      if (current) setTakenOver(current.taken_over);
    } catch (e) {
      showError(e.message);
    } finally {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; scheduleRefresh(); }
    }
  }

  function updateQuietToggle(data) {
    const toggle = document.getElementById("quiet-toggle");
    if (!toggle || data.include_quiet) return;
    const link = toggle.querySelector("a");
    if (!data.hidden_quiet) { toggle.replaceChildren(); return; }
    const text = "Show " + data.hidden_quiet + " quiet conversation" + (data.hidden_quiet === 1 ? "" : "s");
    if (link) { link.textContent = text; return; }
    const a = document.createElement("a");
    a.href = "?quiet=1";
    a.textContent = text;
    toggle.replaceChildren(a);
  }

  // The assistant's reply while the model writes it: one entry per customer message, its whole
  // text so far in each push (masked as this member may see it), replaced by the final message.
  function writingEntry(e) {
    const key = e.message_id || "";
    let li = Array.prototype.find.call(transcript.querySelectorAll("li.writing"), function (item) {
      return item.dataset.reply === key;
    });
    if (!li) {
      li = document.createElement("li");
      li.className = "assistant writing";
      li.dataset.reply = key;
      li.setAttribute("aria-busy", "true");
      transcript.append(li);
    }
    return li;
  }

  function addEntry(e) {
    if (e.kind === "reply_delta" || e.kind === "reply_broken") {
      const entry = writingEntry(e);
      entry.classList.toggle("broken", e.kind === "reply_broken");
      entry.textContent = e.kind === "reply_broken" ? "(The reply broke off; the customer gets a failure note.)" : e.text;
      transcript.scrollTop = transcript.scrollHeight;
      return;
    }
    if (e.kind === "message" && e.role === "assistant") {
      transcript.querySelectorAll("li.writing").forEach(function (item) { item.remove(); });
    }
    const li = document.createElement("li");
    if (e.kind === "tool_call") {
      li.className = "tool_call";
      li.textContent = "Tool " + e.name + (e.ok ? " ✓" : " ✗ " + (e.error || ""));
    } else if (e.kind === "takeover") {
      li.className = "event";
      li.textContent = e.taken_over ? (e.staff + " took over") : (e.staff + " handed back");
      setTakenOver(e.taken_over);
    } else {
      li.className = e.role || "event";
      li.textContent = e.text || "";
    }
    transcript.append(li);
    transcript.scrollTop = transcript.scrollHeight;
  }

  function setTakenOver(taken) {
    takeover.hidden = !mayTakeOver || !!taken;
    release.hidden = !mayTakeOver || !taken;
    reply.hidden = !mayTakeOver || !taken;
  }

  function showError(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(data.message || data.detail || "Request failed (" + response.status + ")");
    return data;
  }

  async function open(number) {
    showError("");
    watching = number;
    rows.querySelectorAll("tr.selected").forEach(function (r) { r.classList.remove("selected"); });
    const row = rows.querySelector('tr[data-number="' + CSS.escape(number) + '"]');
    if (row) row.classList.add("selected");
    const data = await api("GET", "/api/v1/staff/conversations/" + encodeURIComponent(number));
    title.textContent = number + " · " + data.channel;
    transcript.replaceChildren();
    data.transcript.forEach(addEntry);
    setTakenOver(data.taken_over);
    detail.hidden = false;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "watch", conversation: number }));
  }

  rows.addEventListener("click", function (ev) {
    const row = ev.target.closest("tr[data-number]");
    if (row) open(row.dataset.number).catch(function (e) { showError(e.message); });
  });
  rows.addEventListener("keydown", function (ev) {
    const row = ev.target.closest("tr[data-number]");
    if (row && ev.key === "Enter") open(row.dataset.number).catch(function (e) { showError(e.message); });
  });
  takeover.addEventListener("click", function () {
    api("POST", "/api/v1/staff/conversations/" + encodeURIComponent(watching) + "/takeover")
      .then(function () { setTakenOver(true); replyText.focus(); })
      .catch(function (e) { showError(e.message); });
  });
  release.addEventListener("click", function () {
    api("POST", "/api/v1/staff/conversations/" + encodeURIComponent(watching) + "/release")
      .then(function () { setTakenOver(false); })
      .catch(function (e) { showError(e.message); });
  });
  reply.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const text = replyText.value.trim();
    if (!text) return;
    api("POST", "/api/v1/staff/conversations/" + encodeURIComponent(watching) + "/messages", { text: text })
      .then(function () { replyText.value = ""; showError(""); })
      .catch(function (e) { showError(e.message); });
  });

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/api/v1/staff/live");
    socket.addEventListener("open", function () {
      status.textContent = "Live";
      // What changed while the socket was down (or before it first opened).
      scheduleRefresh();
      if (watching) socket.send(JSON.stringify({ type: "watch", conversation: watching }));
    });
    socket.addEventListener("message", function (ev) {
      const data = JSON.parse(ev.data);
      if (data.type === "summary") { applySummary(data); scheduleRefresh(); }
      else if (data.type === "event" && data.conversation === watching) addEntry(data.event);
    });
    socket.addEventListener("close", function (ev) {
      // 4503: live updates are unavailable (Redis down; chatdesk/conversations/live.py).
      // Takeover and replies are refused meanwhile; the page tries again every while.
      if (ev.code === 4503) {
        status.textContent = "Live updates unavailable. Retrying…";
        setTimeout(connect, 10000);
        return;
      }
      status.textContent = "Reconnecting…";
      setTimeout(connect, 2000);
    });
  }
  connect();
})();
