// Progressive enhancement of the delivery forms (they work without it):
// the digest fields are hidden by the style sheet while "at once" is
// chosen; here they are also disabled, so that nothing hidden is sent.
(function () {
  "use strict";
  document.querySelectorAll("form.policy").forEach(function (form) {
    var digest = form.querySelector(".digest-fields");
    if (!digest) { return; }
    function sync() {
      var mode = form.querySelector('input[name="mode"]:checked');
      digest.disabled = !mode || mode.value !== "digest";
    }
    form.querySelectorAll('input[name="mode"]').forEach(function (r) { r.addEventListener("change", sync); });
    sync();
  });
})();
