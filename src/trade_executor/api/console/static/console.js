// Refreshes the page's live part every few seconds from its /fragment twin, without a reload.
// Skipped while the operator is typing in a form or has one open (it would be wiped), while
// the tab is hidden, or while the previous refresh is still on its way.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.fragment) { return; }
  var every = 1000 * (Number(document.body.dataset.refresh) || 3);
  var busy = false;
  function editing() {
    var active = document.activeElement;
    if (active && live.contains(active) && active.closest("form")) { return true; }
    return live.querySelector("details[open]") !== null;
  }
  function refresh() {
    if (busy || document.hidden || editing()) { return; }
    busy = true;
    fetch(live.dataset.fragment, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected || !(response.ok || response.status === 503)) {
          throw new Error("refresh answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (editing()) { return; }
        live.innerHTML = html;
        live.dataset.refreshed = String((Number(live.dataset.refreshed) || 0) + 1);
        document.body.classList.remove("stale");
      })
      .catch(function () { document.body.classList.add("stale"); })
      .then(function () { busy = false; });
  }
  setInterval(refresh, every);
})();
