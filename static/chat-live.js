// Customer page: staff replies and "a person has joined" notices arrive live over a
// WebSocket while a staff member has taken the conversation over. Text is set with
// textContent only.
(function () {
  "use strict";
  const transcript = document.getElementById("transcript");
  const chat = document.getElementById("chat");
  if (!transcript || !chat || !("WebSocket" in window)) return;
  let socket = null;
  let retry = 1000;

  function notice(text, cls) {
    const li = document.createElement("li");
    li.className = "msg " + cls;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = cls === "staff" ? "Staff" : "Notice";
    const p = document.createElement("p");
    p.textContent = text;
    li.append(who, p);
    transcript.append(li);
    li.scrollIntoView({ block: "end" });
  }

  function connect() {
    // Only once the page has a conversation (the cookie is set by the first message).
    if (!chat.dataset.session && !document.cookie.includes("csrftoken")) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/api/v1/chat/live");
    socket.addEventListener("open", function () { retry = 1000; });
    socket.addEventListener("message", function (ev) {
      const data = JSON.parse(ev.data);
      if (data.type === "staff_message") notice(data.text, "staff");
      else if (data.type === "takeover") {
        chat.dataset.takenOver = data.taken_over ? "1" : "";
        if (data.taken_over && chat.dataset.announced !== "1") {
          chat.dataset.announced = "1";
          notice("A member of our team has joined the conversation.", "event");
        } else if (!data.taken_over && chat.dataset.announced === "1") {
          chat.dataset.announced = "";
          notice("You're back with the assistant.", "event");
        }
      }
    });
    socket.addEventListener("close", function (ev) {
      // 4404: no conversation yet; try again after the customer has written.
      setTimeout(connect, ev.code === 4404 ? 5000 : retry);
      retry = Math.min(retry * 2, 15000);
    });
  }
  document.addEventListener("chatdesk:session", connect);
  connect();
})();
