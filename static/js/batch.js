/* Batch page while its files are analysed: poll the batch's JSON status and fill in each row
   (status, stage, verdict, score, thumbnail, link; in a batch judged by several models, a cell
   per model and whether they agree) and the totals. Stops when every analysis has finished.
   Without JavaScript the page refreshes itself (<noscript> meta refresh). */
(function () {
  "use strict";

  var box = document.getElementById("batch");
  if (!box || !window.fetch || !window.faceproofPoll) return;

  var url = box.getAttribute("data-status-url");
  var bar = document.getElementById("batch-progress");
  var headline = box.querySelector("[data-batch-headline]");
  var multi = box.getAttribute("data-multi") === "true";

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  function span(className, text) {
    var el = document.createElement("span");
    el.className = className;
    el.textContent = text;
    return el;
  }

  // One model's analysis of the file, as the page's model_cell macro draws it.
  function renderModel(cell, a) {
    var parts = [];
    if (a.status === "done") {
      parts.push(span("badge badge-" + a.verdict, a.verdict_label));
      if (a.score_label) parts.push(span("score", a.score_label));
    } else {
      parts.push(span("item-status item-status-" + a.status, a.status_label));
      if (a.status === "running") parts.push(span("muted small", a.stage_label + " \u00b7 " + a.percent + "%"));
      else if (a.error) parts.push(span("muted small", a.error.message));
    }
    var key = JSON.stringify([a.status, a.verdict, a.score_label, a.stage_label, a.percent]);
    if (cell.getAttribute("data-key") === key) return;
    cell.setAttribute("data-key", key);
    cell.textContent = "";
    parts.forEach(function (el, i) {
      if (i) cell.appendChild(document.createTextNode(" "));
      cell.appendChild(el);
    });
  }

  function renderAgreement(cell, agreement) {
    if (!cell || cell.getAttribute("data-key") === String(agreement)) return;
    cell.setAttribute("data-key", String(agreement));
    cell.textContent = "";
    if (agreement === "agree") cell.appendChild(span("agree", "Agree"));
    else if (agreement === "disagree") cell.appendChild(span("disagree", "Disagree"));
    else cell.appendChild(span("muted", "\u2013"));
  }

  function renderItem(item) {
    var row = document.getElementById("item-" + item.position);
    if (!row) return;
    var links = item.links || {};
    row.setAttribute("data-status", item.status);

    var status = field(row, "status");
    if (status) {
      setText(status, item.status_label);
      status.className = "item-status item-status-" + item.status;
    }
    var stage = field(row, "stage");
    if (stage) {
      stage.hidden = item.status !== "running";
      setText(stage, item.status === "running" ? item.stage_label + " \u00b7 " + item.percent + "%" : "");
    }

    var verdict = field(row, "verdict");
    if (verdict && item.verdict) {
      verdict.className = "badge badge-" + item.verdict;
      setText(verdict, item.verdict_label);
    }
    var score = field(row, "score");
    if (score) {
      setText(score, item.score_label || "\u2013");
      score.classList.toggle("muted", !item.score_label);
    }
    if (multi) {
      (item.analyses || []).forEach(function (a) {
        var cells = row.querySelectorAll("td[data-model]");
        for (var i = 0; i < cells.length; i++) {
          if (cells[i].getAttribute("data-model") === a.model_version) renderModel(cells[i], a);
        }
      });
      renderAgreement(field(row, "agreement"), item.agreement);
    }

    var error = field(row, "error");
    error.hidden = !item.error;
    setText(error, item.error ? item.error.message : "");

    var thumb = field(row, "thumb");
    var band = item.verdict || (["failed", "rejected", "deleted"].indexOf(item.status) >= 0 ? "failed" : "pending");
    thumb.className = "thumb thumb-sm thumb-" + band;
    if (links.thumbnail && !thumb.querySelector("img")) {
      var img = document.createElement("img");
      img.src = links.thumbnail;
      img.alt = "";
      thumb.appendChild(img);
    }
  }

  function render(batch) {
    var t = batch.totals;
    ["pending", "done", "failed", "rejected", "deleted"].forEach(function (key) {
      setText(box.querySelector('[data-total="' + key + '"]'), String(t[key]));
    });
    Object.keys(t.verdicts).forEach(function (key) {
      setText(box.querySelector('[data-total="' + key + '"]'), String(t.verdicts[key]));
    });
    if (multi) {
      setText(box.querySelector('[data-total="disagreements"]'), String(t.disagreements));
      setText(box.querySelector('[data-total="finished"]'), String(t.analyses.total - t.analyses.pending));
      bar.value = t.analyses.total - t.analyses.pending;
    } else {
      setText(box.querySelector('[data-total="finished"]'), String(t.files - t.pending));
      bar.value = t.files - t.pending;
    }
    batch.items.forEach(renderItem);
    if (batch.finished) {
      box.setAttribute("data-finished", "true");
      setText(headline, "All files finished");
    }
  }

  window.faceproofPoll({
    url: url,
    first: 800,
    onData: function (batch) {
      render(batch);
      return batch.finished ? null : 1500;
    },
    onGone: function () { window.location.assign(box.getAttribute("data-gone-url")); }
  });
})();
