// Follow the Airflow UI's theme choice when it made one (its theme switch stores "light" or "dark"
// under "theme" in this origin's localStorage); otherwise the CSS follows prefers-color-scheme.
(function () {
  try {
    var chosen = window.localStorage.getItem("theme");
    if (chosen === "light" || chosen === "dark") {
      document.documentElement.setAttribute("data-theme", chosen);
    }
  } catch (e) {
    // Storage may be denied (sandboxed iframe without same-origin): keep the system's theme.
  }
})();
