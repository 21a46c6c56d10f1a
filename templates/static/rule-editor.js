// Progressive enhancement of the rule editor (the form works without it):
//  - pickers: the comma-separated list inputs suggest values seen on the bus
//    for the entry being typed, keeping the ones before it;
//  - live preview (every field and filter, "packages I maintain" included:
//    the server resolves them): the form as it stands is posted to
//    POST /rules/preview, which reads it as Save does and answers
//    {"count", "days", "messages"}; the box says how many messages of the
//    last days it would have matched, with the latest ones as links, their
//    time (in the user's zone) and topic. If that endpoint is missing, the
//    box stays hidden.
(function () {
  "use strict";
  var form = document.getElementById("rule-form");
  if (!form) { return; }

  // ---- pickers ----
  var originals = {};
  document.querySelectorAll("datalist").forEach(function (dl) {
    originals[dl.id] = Array.prototype.map.call(dl.options, function (o) { return o.value; });
  });
  function suggest(input) {
    var id = input.dataset.picker;
    var dl = document.getElementById(id);
    if (!dl || !originals[id]) { return; }
    var parts = input.value.split(",");
    var typed = parts.pop().trim().toLowerCase();
    var kept = parts.map(function (p) { return p.trim(); }).filter(function (p) { return p !== ""; });
    var head = kept.length ? kept.join(", ") + ", " : "";
    var taken = kept;
    dl.textContent = "";
    var n = 0;
    for (var i = 0; i < originals[id].length && n < 50; i++) {
      var o = originals[id][i];
      if (typed && o.toLowerCase().indexOf(typed) !== 0) { continue; }
      if (taken.indexOf(o) >= 0) { continue; }
      var opt = document.createElement("option");
      opt.value = head + o;
      dl.appendChild(opt);
      n++;
    }
  }
  form.querySelectorAll("input[data-picker]").forEach(function (input) {
    input.addEventListener("input", function () { suggest(input); });
    input.addEventListener("focus", function () { suggest(input); });
  });

  // ---- packages I maintain ----
  // Before dist-git was read for the user, the count is unknown; the page
  // asked for it, and this fills the count and the list when it is there.
  var resolved = document.getElementById("owned-resolved");
  function showMaintained(data) {
    var countEl = document.getElementById("owned-count");
    if (countEl) { countEl.textContent = "(" + data.artifacts.length + ")"; }
    resolved.textContent = "";
    if (!data.artifacts.length) {
      var p = document.createElement("p");
      p.className = "muted small";
      p.textContent = "dist-git lists no package you maintain as " + resolved.dataset.user + ". Is that your Fedora account name? You can change it in Settings.";
      resolved.appendChild(p);
      return;
    }
    var det = document.createElement("details");
    det.id = "owned-list";
    var sum = document.createElement("summary");
    sum.textContent = "What dist-git says " + resolved.dataset.user + " maintains";
    det.appendChild(sum);
    var ul = document.createElement("ul");
    ul.className = "chips";
    data.artifacts.forEach(function (a) {
      var li = document.createElement("li");
      var chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = (a.namespace === "rpms" ? "" : a.namespace + "/") + a.name;
      li.appendChild(chip);
      ul.appendChild(li);
    });
    det.appendChild(ul);
    resolved.appendChild(det);
  }
  if (resolved && resolved.dataset.fetched === "false") {
    var tries = 0;
    var poll = function () {
      fetch("/api/v1/me/maintained", { credentials: "same-origin" }).then(function (resp) {
        return resp.ok ? resp.json() : null;
      }).then(function (data) {
        if (data && data.fetched) { showMaintained(data); schedule(); return; }
        if (++tries < 30) { setTimeout(poll, 2000); }
      }).catch(function () {});
    };
    setTimeout(poll, 1000);
  }

  // ---- preview ----
  // The form as it stands goes to POST /rules/preview, which reads it with
  // the very code that saves it: the preview is of the rule Save would
  // store, every field and filter included.
  var box = document.getElementById("preview");
  var count = document.getElementById("preview-count");
  var list = document.getElementById("preview-list");
  var el = window.fmnItems ? window.fmnItems.el : null; // items.js draws the items
  function item(m) {
    var li = el("li", "item");
    var head = el("div", "item-head");
    head.appendChild(el("span", "app", m.app || ""));
    head.appendChild(document.createTextNode(" "));
    var t = el("time", "muted", m.ago || "");
    t.title = m.when || "";
    head.appendChild(t);
    li.appendChild(head);
    li.appendChild(window.fmnItems.summary(m));
    var foot = el("div", "muted small");
    foot.appendChild(el("code", "", m.topic || ""));
    if (m.when) { foot.appendChild(document.createTextNode(" · " + m.when)); }
    li.appendChild(foot);
    return li;
  }
  var timer = null, seq = 0;
  function run() {
    var my = ++seq;
    fetch("/rules/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)).toString()
    }).then(function (resp) {
      if (my !== seq) { return; }
      if (resp.status === 404 || resp.status === 405) { box.hidden = true; return; }
      return resp.json().then(function (data) {
        if (my !== seq) { return; }
        box.hidden = false;
        list.textContent = "";
        if (!resp.ok || data.invalid) {
          var why = data.invalid || data || {};
          count.textContent = why.field === "track" ? "Pick something to track to see what this rule would match." :
            (why.error || "This rule cannot be previewed yet.");
          return;
        }
        var n = Number(data.count) || 0;
        count.textContent = "This rule would have matched " + n + (n === 1 ? " message" : " messages") + " in the last " + (data.days || 7) + " days" + (n ? ". The latest:" : ".");
        if (el) { (data.messages || []).slice(0, 5).forEach(function (m) { list.appendChild(item(m)); }); }
      });
    }).catch(function () { if (my === seq) { box.hidden = true; } });
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(run, 300);
  }
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  run();
})();
