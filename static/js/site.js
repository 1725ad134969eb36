/* Small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  var EXTENSIONS = ["mp4", "mov", "avi", "mkv", "webm", "jpg", "jpeg", "png", "webp", "bmp"];

  function megabytes(bytes) {
    if (bytes < 1024) return bytes + (bytes === 1 ? " byte" : " bytes");
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.round(bytes / 1024) + " KB";
  }

  function extension(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  }

  // Upload forms: list the chosen files (name, size, a remove button), add files by picking
  // again or by dropping them on the drop zone, check the limits before sending, and show a
  // busy button while the files upload. Without this script the plain multi-file input works.
  var forms = document.querySelectorAll("form.upload-form");
  Array.prototype.forEach.call(forms, function (form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector(".dropzone");
    var hint = form.querySelector("[data-file-label]");
    var error = form.querySelector("[data-client-error]");
    var submit = form.querySelector("[type=submit]");
    var chosenBox = form.querySelector(".chosen");
    var list = form.querySelector(".file-list");
    var count = form.querySelector("[data-chosen-count]");
    var total = form.querySelector("[data-chosen-total]");
    var clear = form.querySelector("#clear-files");
    var nameField = form.querySelector("[data-batch-only]");
    var links = form.querySelector("textarea[name=urls]");
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
    var maxFiles = parseInt(form.getAttribute("data-batch-max-files"), 10) || 0;
    var maxTotal = parseInt(form.getAttribute("data-batch-max-bytes"), 10) || 0;
    var originalHint = hint ? hint.textContent : "";
    var submitLabel = submit ? submit.value : "";
    // Rebuilding input.files needs DataTransfer; without it the browser's own choice stands.
    var canEdit = (function () {
      try { return !!new DataTransfer().files; } catch (e) { return false; }
    })();
    var chosen = [];

    function key(file) { return file.name + "\u0000" + file.size + "\u0000" + file.lastModified; }

    function sync() {
      if (!canEdit) return;
      var transfer = new DataTransfer();
      chosen.forEach(function (file) { transfer.items.add(file); });
      input.files = transfer.files;
    }

    function add(files) {
      var seen = {};
      chosen.forEach(function (file) { seen[key(file)] = true; });
      Array.prototype.forEach.call(files, function (file) {
        if (!seen[key(file)]) { chosen.push(file); seen[key(file)] = true; }
      });
      sync();
      show();
    }

    function linkCount() {
      if (!links) return 0;
      return links.value.split("\n").filter(function (line) { return line.trim(); }).length;
    }

    function problem() {
      var bytes = chosen.reduce(function (sum, file) { return sum + file.size; }, 0);
      var big = chosen.filter(function (file) { return maxBytes && file.size > maxBytes; });
      if (chosen.length === 1 && big.length) {
        return "This file is larger than the " + form.getAttribute("data-max-size") + " limit. Trim the clip or export it at a lower resolution.";
      }
      if (maxFiles && chosen.length + linkCount() > maxFiles) {
        return "You chose " + (chosen.length + linkCount()) + (linkCount() ? " files and links" : " files") + "; one batch holds at most " + maxFiles + ". Remove some, or send them in several batches.";
      }
      if (big.length) {
        return (big.length === 1 ? "One file is" : big.length + " files are") + " larger than the " + form.getAttribute("data-max-size") + " limit for one file (marked below). Remove " + (big.length === 1 ? "it" : "them") + " first.";
      }
      if (chosen.length > 1 && maxTotal && bytes > maxTotal) {
        return "These files add up to " + megabytes(bytes) + "; one batch holds at most " + form.getAttribute("data-batch-max-size") + " in all. Remove some, or send them in several batches.";
      }
      return "";
    }

    function item(file, index) {
      var li = document.createElement("li");
      li.className = "file-item";
      var name = document.createElement("span");
      name.className = "file-name";
      name.textContent = file.name;
      name.title = file.name;
      var size = document.createElement("span");
      size.className = "file-size muted";
      size.textContent = megabytes(file.size);
      li.appendChild(name);
      li.appendChild(size);
      var note = "";
      if (maxBytes && file.size > maxBytes) note = "over " + form.getAttribute("data-max-size");
      else if (EXTENSIONS.indexOf(extension(file.name)) < 0) note = "not a supported type: it will be refused";
      else if (file.size === 0) note = "empty: it will be refused";
      if (note) {
        var flag = document.createElement("span");
        flag.className = "file-flag";
        flag.textContent = note;
        li.appendChild(flag);
        li.classList.add("is-flagged");
      }
      if (canEdit) {
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "file-remove";
        remove.setAttribute("aria-label", "Remove " + file.name);
        remove.title = "Remove";
        remove.textContent = "\u00d7";
        remove.addEventListener("click", function () {
          chosen.splice(index, 1);
          sync();
          show();
          (list.querySelector(".file-remove") || input).focus();
        });
        li.appendChild(remove);
      }
      return li;
    }

    function show() {
      var n = chosen.length;
      var bytes = chosen.reduce(function (sum, file) { return sum + file.size; }, 0);
      if (hint) {
        hint.textContent = n === 0 ? originalHint
          : n === 1 ? chosen[0].name + " \u00b7 " + megabytes(chosen[0].size)
          : n + " files chosen \u00b7 " + (canEdit ? "drop or choose more to add them" : "choose again to change");
      }
      zone.classList.toggle("has-file", n > 0);
      if (list) {
        list.textContent = "";
        chosen.forEach(function (file, index) { list.appendChild(item(file, index)); });
        chosenBox.hidden = n === 0;
        count.textContent = n + (n === 1 ? " file" : " files");
        total.textContent = "\u00b7 " + megabytes(bytes) + (n > 1 && maxFiles ? " of " + form.getAttribute("data-batch-max-size") + ", " + n + " of " + maxFiles + " files" : "");
        if (clear) clear.hidden = !canEdit;
      }
      var items = n + linkCount();
      if (nameField) nameField.hidden = items < 2;
      var message = problem();
      if (error) {
        error.hidden = !message;
        error.textContent = message;
      }
      if (submit) submit.value = items < 2 ? submitLabel : "Analyse " + items + (linkCount() ? " files and links" : " files");
    }

    if (nameField) nameField.hidden = true;
    input.addEventListener("change", function () {
      if (!canEdit) {
        chosen = Array.prototype.slice.call(input.files || []);
        show();
        return;
      }
      var picked = Array.prototype.slice.call(input.files || []);
      add(picked);  // picking again adds to the list
    });
    if (links) links.addEventListener("input", show);
    if (clear) clear.addEventListener("click", function () {
      chosen = [];
      sync();
      show();
      input.focus();
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        zone.classList.add("is-dragging");
        if (canEdit) event.preventDefault();
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("is-dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      if (!canEdit || !event.dataTransfer || !event.dataTransfer.files.length) return;
      event.preventDefault();  // add the dropped files to those already chosen
      add(event.dataTransfer.files);
    });
    form.addEventListener("submit", function (event) {
      if (problem()) {
        event.preventDefault();
        show();
        return;
      }
      if (((input.files && input.files.length) || linkCount()) && submit) {
        submit.disabled = true;
        submit.value = submit.getAttribute("data-busy-label") || submit.value;
        form.classList.add("is-busy");
      }
    });
    // Files already in the input (the browser kept them on "back"): list them.
    if (input.files && input.files.length) {
      chosen = Array.prototype.slice.call(input.files);
      show();
    }
  });

  // A result that just finished while its page was open (progress.js): focus the verdict,
  // so a screen reader reads it and the keyboard starts from there.
  var verdict = document.getElementById("verdict-label");
  var waited = null;
  try { waited = window.sessionStorage.getItem("faceproof-focus-verdict"); } catch (e) { /* private mode */ }
  if (waited) {
    try { window.sessionStorage.removeItem("faceproof-focus-verdict"); } catch (e) { /* private mode */ }
    if (verdict && window.location.pathname.indexOf(waited) >= 0) verdict.focus();
  }

  // Forms that destroy something ask first.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);
})();
