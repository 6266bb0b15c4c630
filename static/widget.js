/*
 * Chatdesk website widget: the one line a business pastes into its own site. The admin's
 * snippet fetches this file only after the host page's load event (a browser holds `load`
 * until an async script has arrived, so a first visit would otherwise wait for it), and
 * passes the options as data- attributes of the <script> element it creates:
 *
 *   <script>(function(){function l(){var s=document.createElement("script");s.src="https://<chatdesk host>/widget.js";
 *     s.async=true;s.dataset.color="#0f4c81";document.body.appendChild(s)}
 *     document.readyState=="complete"?l():addEventListener("load",l)})()</script>
 *
 * The simpler form works too, at the cost of the fetch inside a first visit's load event:
 *
 *   <script src="https://<chatdesk host>/widget.js" async
 *           data-color="#0f4c81" data-position="right" data-greeting="Furnace trouble? Book a visit here."></script>
 *
 * It draws a launcher in its own shadow DOM (the site's CSS cannot reach it, and its CSS
 * cannot reach the site) and requests nothing more until the visitor opens it. Then a
 * panel frames the chat page in its compact layout (/widget/, on the Chatdesk origin): the
 * conversation, booking cards and the call button. The panel is a modal dialog: focus stays
 * in it, Escape (here or inside the frame, which posts "chatdesk:close") closes it and focus
 * returns to the launcher. On a phone it fills the screen.
 *
 * The page also gets window.ChatdeskWidget.open() / .close(), for its own "Book now" buttons.
 */
(function () {
  "use strict";

  // currentScript is null in some cases for a script another script inserted (and in old
  // browsers): then our own tag is the one whose address ends in /widget.js.
  var script = document.currentScript || document.querySelector('script[src$="/widget.js"]');
  if (!script || !script.src || window.ChatdeskWidget || !Element.prototype.attachShadow) return;

  var origin = new URL(script.src, location.href).origin;
  var options = script.dataset;
  // Only a hex colour is taken, so a typo cannot inject CSS into the launcher.
  var color = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(options.color || "") ? options.color : "#0f4c81";
  var side = options.position === "left" || options.position === "bottom-left" ? "left" : "right";
  var greeting = (options.greeting || "").trim().slice(0, 160);
  var title = (options.title || "").trim().slice(0, 60) || "Chat with us";

  var host = document.createElement("chatdesk-widget");
  // Inherited styles of the site (fonts, colours, line height) stop at this element.
  host.style.setProperty("all", "initial", "important");
  var shadow = host.attachShadow({ mode: "open" });

  var css =
    ":host{all:initial}*{box-sizing:border-box}[hidden]{display:none!important}" +
    "button{font:inherit}button:focus-visible,.trap:focus-visible{outline:3px solid #f5a524;outline-offset:2px}" +
    ".launcher{position:fixed;bottom:20px;" + side + ":20px;z-index:2147483000;width:60px;height:60px;" +
    "padding:0;border:0;border-radius:50%;background:" + color + ";color:" + ink(color) + ";cursor:pointer;" +
    "display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgb(0 0 0/28%)}" +
    ".launcher svg{width:30px;height:30px}" +
    ".bubble{position:fixed;bottom:92px;" + side + ":20px;z-index:2147483000;max-width:260px;padding:10px 14px;" +
    "border-radius:14px;background:#fff;color:#18212b;font:15px/1.4 system-ui,sans-serif;cursor:pointer;" +
    "box-shadow:0 4px 18px rgb(0 0 0/20%)}" +
    ".panel{position:fixed;bottom:92px;" + side + ":20px;z-index:2147483001;width:390px;" +
    "height:min(680px,calc(100vh - 112px));display:flex;flex-direction:column;overflow:hidden;" +
    "border-radius:16px;background:#f2f4f7;box-shadow:0 10px 36px rgb(0 0 0/32%);" +
    "font:600 16px/1.3 system-ui,sans-serif}" +
    ".bar{display:flex;align-items:center;justify-content:space-between;gap:8px;padding:6px 6px 6px 16px;" +
    "background:" + color + ";color:" + ink(color) + "}" +
    ".close{width:44px;height:44px;border:0;border-radius:50%;background:transparent;color:inherit;" +
    "cursor:pointer;font-size:28px;line-height:1}" +
    "iframe{flex:1;width:100%;min-height:0;border:0;display:block}" +
    ".trap{position:absolute;width:1px;height:1px;overflow:hidden}" +
    "@media (max-width:600px){.panel{inset:0;width:100%;height:100%;border-radius:0}" +
    ".open .launcher,.open .bubble{display:none}}";
  if (window.CSSStyleSheet && "adoptedStyleSheets" in shadow) {
    // A constructed sheet: allowed by a site CSP that forbids inline <style>.
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style");
    style.textContent = css;
    shadow.append(style);
  }

  var root = document.createElement("div");
  var launcher = element("button", "launcher", {
    type: "button",
    "aria-label": title,
    "aria-expanded": "false",
    "aria-haspopup": "dialog",
  });
  // A speech bubble, drawn inline: no image request.
  launcher.innerHTML =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M4 3h16a2 2 0 0 1 ' +
    "2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 " +
    '0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"/></svg>';
  root.append(launcher);
  var bubble = null;
  if (greeting) {
    // Mouse users click it; for everyone else it describes the launcher.
    bubble = element("div", "bubble", { id: "chatdesk-greeting", "aria-hidden": "true" });
    bubble.textContent = greeting;
    bubble.addEventListener("click", open);
    launcher.setAttribute("aria-describedby", "chatdesk-greeting");
    root.append(bubble);
  }
  shadow.append(root);

  var panel = null;
  var frame = null;
  var closeButton = null;
  var isOpen = false;

  function element(tag, className, attributes) {
    var node = document.createElement(tag);
    node.className = className;
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    return node;
  }

  // Black or white text, whichever reads better on the business's colour.
  function ink(hex) {
    var digits = hex.length === 4 ? hex.replace(/\w/g, "$&$&").slice(1) : hex.slice(1);
    var lum = [0, 2, 4].reduce(function (sum, at, i) {
      var c = parseInt(digits.slice(at, at + 2), 16) / 255;
      c = c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
      return sum + c * [0.2126, 0.7152, 0.0722][i];
    }, 0);
    return lum > 0.179 ? "#111" : "#fff";
  }

  function build() {
    panel = element("div", "panel", { role: "dialog", "aria-modal": "true", "aria-label": title });
    var startTrap = element("span", "trap", { tabindex: "0" });
    var endTrap = element("span", "trap", { tabindex: "0" });
    var bar = element("div", "bar", {});
    var heading = element("span", "title", {});
    heading.textContent = title;
    closeButton = element("button", "close", { type: "button", "aria-label": "Close chat" });
    closeButton.textContent = "\u00d7";
    closeButton.addEventListener("click", close);
    bar.append(heading, closeButton);
    // The host page's address without its query or fragment, which may hold the visitor's data.
    var page = location.origin + location.pathname;
    frame = element("iframe", "", {
      title: title,
      allow: "microphone",
      src: origin + "/widget/?page=" + encodeURIComponent(page),
    });
    frame.addEventListener("load", function () {
      if (isOpen) focusFrame("first");
    });
    // Tab past the last control in the frame, or Shift+Tab before the first: wrap around.
    startTrap.addEventListener("focus", function () {
      focusFrame("last");
    });
    endTrap.addEventListener("focus", function () {
      closeButton.focus();
    });
    panel.append(startTrap, bar, frame, endTrap);
    root.append(panel);
  }

  function focusFrame(at) {
    frame.focus();
    // Only delivered if the frame really is the Chatdesk page (not an error page).
    frame.contentWindow.postMessage({ type: "chatdesk:focus", at: at }, origin);
  }

  function open() {
    if (!panel) build();
    isOpen = true;
    panel.hidden = false;
    root.className = "open";
    launcher.setAttribute("aria-expanded", "true");
    if (bubble) bubble.hidden = true;
    // Before the frame has loaded this focuses the frame; its load handler moves on into it.
    focusFrame("first");
  }

  function close() {
    if (!isOpen) return;
    isOpen = false;
    panel.hidden = true;
    root.className = "";
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", function () {
    if (isOpen) close();
    else open();
  });
  shadow.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && isOpen) {
      event.stopPropagation();
      close();
    }
  });
  window.addEventListener("message", function (event) {
    if (!frame || event.origin !== origin || event.source !== frame.contentWindow) return;
    if (event.data && event.data.type === "chatdesk:close") close();
  });
  // Focus stays in the panel while it is open: anything on the page that takes it gives it back.
  // (Focus inside the shadow root or the frame shows here as the host element itself.)
  document.addEventListener("focusin", function (event) {
    if (isOpen && event.target !== host) closeButton.focus();
  });

  window.ChatdeskWidget = { open: open, close: close };
  if (document.body) document.body.append(host);
  else document.addEventListener("DOMContentLoaded", function () { document.body.append(host); });
})();
