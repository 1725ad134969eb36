/* Small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  // Upload forms: show the chosen file, check its size before sending, drag-and-drop look,
  // and a busy button while the file uploads.
  var forms = document.querySelectorAll("form.upload-form");
  Array.prototype.forEach.call(forms, function (form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector(".dropzone");
    var hint = form.querySelector("[data-file-label]");
    var error = form.querySelector("[data-client-error]");
    var submit = form.querySelector("[type=submit]");
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
    var originalHint = hint ? hint.textContent : "";

    function tooBig() {
      var file = input.files && input.files[0];
      return file && maxBytes && file.size > maxBytes;
    }

    function showChosen() {
      var file = input.files && input.files[0];
      if (hint) hint.textContent = file ? file.name + " \u00b7 " + (file.size / 1048576).toFixed(1) + " MB" : originalHint;
      zone.classList.toggle("has-file", !!file);
      if (error) {
        error.hidden = !tooBig();
        error.textContent = tooBig()
          ? "This file is larger than the " + form.getAttribute("data-max-size") + " limit. Trim the clip or export it at a lower resolution."
          : "";
      }
    }

    input.addEventListener("change", showChosen);
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.add("is-dragging"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("is-dragging"); });
    });
    form.addEventListener("submit", function (event) {
      if (tooBig()) {
        event.preventDefault();
        showChosen();
        return;
      }
      if (input.files && input.files.length && submit) {
        submit.disabled = true;
        submit.value = submit.getAttribute("data-busy-label") || submit.value;
        form.classList.add("is-busy");
      }
    });
  });

  // Forms that destroy something ask first.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);
})();
