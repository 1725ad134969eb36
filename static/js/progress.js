/* Result page while an analysis runs: poll the small JSON status endpoint and move the
   progress bar. Reloads the page when the job is done or failed. Without JavaScript the
   page refreshes itself (<noscript> meta refresh). */
(function () {
  "use strict";

  var box = document.getElementById("job");
  if (!box || !window.fetch || !window.faceproofPoll) return;

  var url = box.getAttribute("data-status-url");
  var bar = document.getElementById("job-progress");
  var percent = box.querySelector("[data-percent]");
  var label = box.querySelector("[data-stage-label]");
  var queue = box.querySelector("[data-queue]");
  var steps = box.querySelectorAll("[data-stage]");
  var announce = box.querySelector("[data-announce]");
  var announced = "";
  // The stages listed on the page, in order ("download" first for a link); "align" shows
  // as part of "detect", "load" comes just before "decode", "save" completes all.
  var order = Array.prototype.map.call(steps, function (el) { return el.getAttribute("data-stage"); });
  var alias = { align: "detect" };

  function markStages(stage) {
    var current = alias[stage] || stage;
    var index = stage === "save" ? order.length
      : stage === "load" ? order.indexOf("decode") - 0.5
      : order.indexOf(current);
    for (var i = 0; i < steps.length; i++) {
      var at = order.indexOf(steps[i].getAttribute("data-stage"));
      steps[i].classList.toggle("is-done", index >= 0 && at < index);
      steps[i].classList.toggle("is-active", at === index);
    }
  }

  function render(s) {
    bar.value = s.percent;
    bar.textContent = s.percent + "%";
    percent.textContent = s.percent + "%";
    label.textContent = s.stage_label;
    if (s.status === "queued") {
      queue.textContent = s.queue_position > 0
        ? s.queue_position + (s.queue_position === 1 ? " file" : " files") + " ahead of this one in the queue."
        : "Next in line.";
    } else if (s.stage === "download") {
      queue.textContent = "Fetching the file from the link \u2014 this page updates by itself.";
    } else {
      queue.textContent = "Analysing \u2014 this page updates by itself.";
    }
    box.setAttribute("data-status", s.status);
    markStages(s.stage);
    // Screen readers hear each new stage once (a polite live region), not every percent.
    var words = s.status === "done" ? "Analysis finished. Opening the verdict."
      : s.status === "failed" ? "The analysis failed. Opening the reason."
      : s.stage_label;
    if (announce && words !== announced) {
      announce.textContent = words;
      announced = words;
    }
  }

  window.faceproofPoll({
    url: url,
    first: 600,
    onData: function (s) {
      render(s);
      if (s.status === "done" || s.status === "failed") {
        // The reloaded page puts the focus on the verdict, so it is read out (site.js).
        try { window.sessionStorage.setItem("faceproof-focus-verdict", s.id); } catch (e) { /* private mode */ }
        window.setTimeout(function () { window.location.reload(); }, 300);
        return null;
      }
      return 1000;
    },
    onGone: function () { window.location.assign(box.getAttribute("data-gone-url")); }
  });
})();
