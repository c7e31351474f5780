// The run page follows its run: while the run can still change, ask the REST API for its state
// every few seconds and reload the page when it moved (so an approved gate shows the run resume).
// No inline script (the CSP forbids it): the page names what to watch in data attributes.
(function () {
  var main = document.getElementById("main");
  var url = main && main.getAttribute("data-watch");
  if (!url) {
    return;
  }
  var shown = main.getAttribute("data-state");
  var every = 3000;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (run) {
        if (run && run.state !== shown) {
          window.location.replace(window.location.pathname);
          return;
        }
        window.setTimeout(poll, every);
      })
      .catch(function () { window.setTimeout(poll, every * 2); });
  }
  window.setTimeout(poll, every);
})();
