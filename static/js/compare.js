/* Result page with another model's analysis of the same file still running: fetch the
   side-by-side panel again every two seconds and swap it in, until no column is pending.
   An "Analysing with …" notice (data-analysing="<version>,<version>") turns to its
   data-done (or data-failed) text once those models' columns have finished.
   Without JavaScript the page refreshes itself (<noscript> meta refresh). */
(function () {
  "use strict";

  if (!window.fetch || !window.DOMParser || !window.faceproofPoll) return;

  function panel() {
    return document.getElementById("compare");
  }

  function settleNotices() {
    var box = panel();
    if (!box) return;
    var notices = document.querySelectorAll(".flash[data-analysing]");
    for (var i = 0; i < notices.length; i++) {
      var note = notices[i];
      var versions = note.getAttribute("data-analysing").split(",");
      var finished = true, failed = false;
      for (var j = 0; j < versions.length; j++) {
        var col = null, cols = box.querySelectorAll(".compare-col[data-model]");
        for (var k = 0; k < cols.length; k++) {
          if (cols[k].getAttribute("data-model") === versions[j]) col = cols[k];
        }
        var status = col ? col.getAttribute("data-status") : "queued";
        if (status === "queued" || status === "running") finished = false;
        if (status === "failed") failed = true;
      }
      if (!finished) continue;
      note.textContent = note.getAttribute(failed ? "data-failed" : "data-done");
      note.classList.remove("flash-success");
      note.classList.add("flash-info");
      note.removeAttribute("data-analysing");
    }
  }

  function pending() {
    var box = panel();
    return box && box.getAttribute("data-pending") === "1" ? 2000 : null;
  }

  settleNotices();
  window.faceproofPoll({
    url: function () {
      var box = panel();
      return box && box.getAttribute("data-panel-url");
    },
    html: true,
    backoff: 2000,
    first: pending(),
    onData: function (html) {
      var box = panel();
      if (!box) return null;
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("compare");
      if (fresh) box.replaceWith(document.importNode(fresh, true));
      else box.remove(); // the other analyses were deleted: nothing left to compare
      settleNotices();
      return pending();
    }
    // a 404: this result was deleted meanwhile; stop
  });
})();
