/* One way to poll the server while something runs (result page, batch page, comparison).

   faceproofPoll({url, html, first, onData, onGone, backoff}) fetches `url` (a string, or a
   function returning one; nothing returned: stop) `first` ms from now, as JSON (or as text
   with `html: true`), and hands each answer to `onData`, which returns the ms until the next
   poll, or nothing to stop. A 404 calls `onGone` and stops. While requests fail it backs off:
   `backoff` (default 1000) ms times 2, 4, 8 ..., at most 15 s. */
(function () {
  "use strict";

  var GONE = {};

  window.faceproofPoll = function (o) {
    var failures = 0;

    function later(ms) {
      window.setTimeout(tick, ms);
    }

    function tick() {
      var url = typeof o.url === "function" ? o.url() : o.url;
      if (!url) return;
      fetch(url, {
        headers: { Accept: o.html ? "text/html" : "application/json" },
        cache: "no-store",
        credentials: "same-origin"
      })
        .then(function (response) {
          if (response.status === 404) return GONE;
          if (!response.ok) throw new Error("HTTP " + response.status);
          return o.html ? response.text() : response.json();
        })
        .then(function (data) {
          if (data === GONE) {
            if (o.onGone) o.onGone();
            return;
          }
          failures = 0;
          var next = o.onData(data);
          if (next) later(next);
        })
        .catch(function () {
          failures += 1;
          later(Math.min(15000, (o.backoff || 1000) * Math.pow(2, failures)));
        });
    }

    if (o.first !== null && o.first !== undefined && o.first !== false) later(o.first);
  };
})();
