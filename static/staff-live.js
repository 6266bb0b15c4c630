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

  function upsertRow(s) {
    let row = rows.querySelector('tr[data-number="' + CSS.escape(s.number) + '"]');
    const empty = rows.querySelector("tr.empty");
    if (empty) empty.remove();
    if (!row) {
      row = document.createElement("tr");
      row.dataset.number = s.number;
      row.tabIndex = 0;
      rows.prepend(row);
    }
    row.replaceChildren(
      cell(s.number, "number"), cell(s.channel), cell(String(s.message_count), "count"),
      cell(String(s.booking_count), "bookings"), cell(s.cost_usd === null ? "–" : "$" + s.cost_usd, "cost"),
      cell(s.taken_over ? "staff" : s.mode, "state"));
    if (s.status && s.status !== "open") row.remove();
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
    if (watching === s.number) setTakenOver(s.taken_over);
  }

  function addEntry(e) {
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
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "watch", interaction: number }));
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
      if (watching) socket.send(JSON.stringify({ type: "watch", interaction: watching }));
    });
    socket.addEventListener("message", function (ev) {
      const data = JSON.parse(ev.data);
      if (data.type === "summary") upsertRow(data);
      else if (data.type === "event" && data.interaction === watching) addEntry(data.event);
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
