// Progressive enhancement of the rule editor (the form works without it):
//  - pickers: the comma-separated list inputs suggest values seen on the bus
//    for the entry being typed, keeping the ones before it;
//  - live preview (every kind of tracking entry, "packages I maintain"
//    included: the server resolves them): the rule as it stands is sent to
//    POST /api/v1/rules/preview, which answers {"count", "messages"}, and
//    the box says how many messages of the last 7 days it would have
//    matched, with the latest ones. If that endpoint is missing or refuses,
//    the box stays hidden.
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
  var box = document.getElementById("preview");
  var count = document.getElementById("preview-count");
  var list = document.getElementById("preview-list");
  function words(name) {
    var el = form.elements[name];
    if (!el) { return []; }
    return el.value.split(/[\s,]+/).filter(function (s) { return s !== ""; });
  }
  function checked(name) {
    var el = form.elements[name];
    return !!(el && el.checked);
  }
  function body() {
    var track = {}, filters = {};
    ["mine", "owned", "my_groups"].forEach(function (k) {
      if (checked("track." + k)) { track[k] = true; }
    });
    [["users", "track.users"], ["packages", "track.packages"], ["topics", "track.topics"], ["apps", "track.apps"],
     ["owned_by", "track.owned_by"], ["groups", "track.groups"], ["agents", "track.agents"],
     ["containers", "track.containers"], ["modules", "track.modules"], ["flatpaks", "track.flatpaks"]].forEach(function (p) {
      var w = words(p[1]);
      if (w.length) { track[p[0]] = w; }
    });
    [["apps_exclude", "filters.apps_exclude"], ["topics_exclude", "filters.topics_exclude"]].forEach(function (p) {
      var w = words(p[1]);
      if (w.length) { filters[p[0]] = w; }
    });
    if (checked("filters.not_my_actions")) { filters.not_my_actions = true; }
    return { name: form.elements.name.value.trim() || "preview", track: track, filters: filters };
  }
  function item(m) {
    var li = document.createElement("li");
    li.className = "item";
    var head = document.createElement("div");
    head.className = "item-head";
    var app = document.createElement("span");
    app.className = "app";
    app.textContent = m.app || "";
    head.appendChild(app);
    li.appendChild(head);
    var s = document.createElement("div");
    s.className = "summary";
    s.textContent = m.summary || m.topic || ""; // text, never markup
    li.appendChild(s);
    return li;
  }
  var timer = null, seq = 0, available = false;
  function run() {
    var b = body();
    var my = ++seq;
    if (!Object.keys(b.track).length) {
      box.hidden = !available;
      count.textContent = "Pick something to track to see what this rule would match.";
      list.textContent = "";
      return;
    }
    fetch("/api/v1/rules/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(b)
    }).then(function (resp) {
      if (my !== seq) { return; }
      if (resp.status === 404 || resp.status === 405) { available = false; box.hidden = true; return; }
      available = true;
      return resp.json().then(function (data) {
        if (my !== seq) { return; }
        box.hidden = false;
        list.textContent = "";
        if (!resp.ok) {
          count.textContent = data && data.error ? data.error : "This rule cannot be previewed yet.";
          return;
        }
        var n = Number(data.count) || 0;
        count.textContent = "This rule would have matched " + n + (n === 1 ? " message" : " messages") + " in the last 7 days" + (n ? ". The latest:" : ".");
        (data.messages || []).slice(0, 5).forEach(function (m) { list.appendChild(item(m)); });
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
