// Keeps the notification history live: new notifications arrive over
// Server-Sent Events (GET /api/v1/stream, "notification" events carrying the
// notification as JSON) and are put at the top of the list. Without
// JavaScript, or without the stream, the page is still the full history.
(function () {
  "use strict";
  var list = document.getElementById("history");
  if (!list || !window.EventSource || !window.fmnItems) { return; }
  var el = window.fmnItems.el;
  var status = document.getElementById("live-status");
  var empty = document.getElementById("history-empty");

  // A new notification's state in words, as the server-rendered history
  // says it (web/history.go).
  var states = {
    recorded: ["calm", "kept in your history"],
    pending: ["waiting", "waiting to be sent"],
    sending: ["waiting", "being sent"],
    sent: ["ok", "sent"]
  };

  function render(n) {
    var m = n.message || {};
    var li = el("li", "item new");
    li.dataset.id = String(n.id);
    var head = el("div", "item-head");
    head.appendChild(el("span", "app", m.app || ""));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", "muted", "just now"));
    head.appendChild(document.createTextNode(" "));
    var st = states[n.status] || ["waiting", String(n.status || "")];
    head.appendChild(el("span", "status status-" + st[0], st[1]));
    li.appendChild(head);
    li.appendChild(window.fmnItems.summary(m));
    var foot = el("div", "muted small");
    if (n.rule_name) { foot.appendChild(document.createTextNode("rule “" + n.rule_name + "” · ")); }
    foot.appendChild(el("code", "", m.topic || ""));
    foot.appendChild(document.createTextNode(" · "));
    var why = el("a", "why", "why?");
    why.href = "/notifications/" + String(n.id).replace(/[^0-9]/g, "");
    foot.appendChild(why);
    li.appendChild(foot);
    return li;
  }

  var es = new EventSource("/api/v1/stream");
  es.addEventListener("open", function () {
    if (status) { status.textContent = "Live: new notifications appear here as they are made."; }
    document.body.dataset.live = "open";
  });
  es.addEventListener("notification", function (ev) {
    var n;
    try { n = JSON.parse(ev.data); } catch (e) { return; }
    if (list.querySelector('[data-id="' + String(n.id).replace(/[^0-9]/g, "") + '"]')) { return; }
    list.insertBefore(render(n), list.firstChild);
    if (empty) { empty.hidden = true; }
  });
  es.addEventListener("error", function () {
    if (status) { status.textContent = "Reconnecting to live updates…"; }
    document.body.dataset.live = "error";
  });
})();
