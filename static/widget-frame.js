/*
 * The chat page inside the website widget's panel (static/widget.js frames /widget/).
 *
 * Two small hooks between the frame and the panel around it, by postMessage: Escape here
 * asks the panel to close (it then gives focus back to its launcher), and the panel asks
 * the page to take focus, on its first control or its last, so Tab and Shift+Tab cycle
 * inside the panel. Everything else is the chat page as usual (static/chat.js).
 */
(function () {
  "use strict";

  if (window.parent === window) return; // opened on its own: there is no panel to talk to

  var FOCUSABLE = 'a[href], button:not([disabled]), textarea, input:not([type="hidden"]), [tabindex="0"]';

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.isComposing) return;
    // "*": the message carries nothing but the request, and the business's origin is only
    // known to the panel, which checks that the message comes from this frame.
    window.parent.postMessage({ type: "chatdesk:close" }, "*");
  });

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || !event.data || event.data.type !== "chatdesk:focus") return;
    var target = document.getElementById("message");
    if (event.data.at === "last") {
      var visible = Array.prototype.filter.call(document.querySelectorAll(FOCUSABLE), function (node) {
        return node.getClientRects().length > 0;
      });
      target = visible[visible.length - 1] || target;
    }
    if (target) target.focus({ preventScroll: event.data.at !== "last" });
  });
})();
