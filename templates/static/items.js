// What the history's live updates and the editor's preview both draw: an
// element with text (never markup), and a message's summary as a link to
// the message when it has a web link. Loaded before live.js and
// rule-editor.js.
(function () {
  "use strict";
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function summary(m) {
    var div = el("div", "summary");
    var text = m.summary || m.topic || "";
    if (/^https?:\/\//i.test(m.link || "")) {
      var a = el("a", "", text);
      a.href = m.link;
      a.rel = "noopener noreferrer";
      div.appendChild(a);
    } else {
      div.textContent = text;
    }
    return div;
  }
  window.fmnItems = { el: el, summary: summary };
})();
