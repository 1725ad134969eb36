/* Result page with another model's analysis of the same file still running: fetch the
   side-by-side panel again every two seconds and swap it in, until no column is pending.
   Without JavaScript the page refreshes itself (<noscript> meta refresh). */
(function () {
  "use strict";

  if (!window.fetch || !window.DOMParser) return;
  var failures = 0;

  function panel() {
    return document.getElementById("compare");
  }

  function schedule() {
    var box = panel();
    if (!box || box.getAttribute("data-pending") !== "1") return;
    window.setTimeout(poll, failures ? Math.min(15000, 2000 * Math.pow(2, failures)) : 2000);
  }

  function poll() {
    var box = panel();
    if (!box) return;
    fetch(box.getAttribute("data-panel-url"), {
      headers: { Accept: "text/html" }, cache: "no-store", credentials: "same-origin"
    })
      .then(function (response) {
        if (response.status === 404) return null; // this result was deleted meanwhile
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        failures = 0;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("compare");
        if (fresh) box.replaceWith(document.importNode(fresh, true));
        else box.remove(); // the other analyses were deleted: nothing left to compare
        schedule();
      })
      .catch(function () {
        failures += 1;
        schedule();
      });
  }

  schedule();
})();
