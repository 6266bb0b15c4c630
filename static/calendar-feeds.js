// Calendar feeds admin page: "Copy" puts a feed URL on the clipboard. Without JavaScript
// (or clipboard access) the URL sits in a read-only field, selected on focus, to copy by hand.
(function () {
  "use strict";
  document.querySelectorAll(".feed-url input[readonly]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      const input = document.getElementById(button.dataset.copy);
      if (!input) return;
      input.focus();
      input.select();
      const done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
})();
