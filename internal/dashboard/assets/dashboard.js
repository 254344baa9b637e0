// The charge page's live status: while a charge is pending, hold a long poll on its
// wait endpoint and reload the page once its status is no longer the one shown.
(function () {
  "use strict";
  var el = document.getElementById("charge-status");
  if (!el || !el.dataset.poll) return;
  var shown = el.dataset.status, delay = 1000;
  function poll() {
    fetch(el.dataset.poll, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (c) {
        if (c.status !== shown) { location.reload(); return; }
        delay = 1000;
        poll();
      })
      .catch(function () { delay = Math.min(delay * 2, 30000); setTimeout(poll, delay); });
  }
  poll();
})();
