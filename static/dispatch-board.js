// The dispatch board (chatdesk/backoffice/dispatch_board.py) works without this file: its
// settings are a plain GET form with a Show button. With it, changing a setting applies it
// at once, and the button, no longer needed, is hidden.
(function () {
  "use strict";
  var form = document.querySelector(".dispatch-board .board-filters");
  if (!form) {
    return;
  }
  form.addEventListener("change", function (event) {
    if (event.target && event.target.matches("select, input[type=date]")) {
      form.requestSubmit ? form.requestSubmit() : form.submit();
    }
  });
  var button = form.querySelector("button[type=submit]");
  if (button) {
    button.classList.add("board-js-hidden");
  }
})();
