// The admin's "Website widget" page: "Copy" puts the snippet on the clipboard. Without
// JavaScript (or clipboard access) the snippet sits in a read-only box, selected on focus.
(function () {
  "use strict";
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var box = document.getElementById(button.dataset.copy);
    if (!box) return;
    box.addEventListener("focus", function () { box.select(); });
    button.addEventListener("click", function () {
      box.focus();
      box.select();
      var done = function () {
        button.textContent = "Copied";
        window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(box.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
})();
