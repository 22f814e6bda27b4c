// rollwatch agent page: keeps <main id="live"> current without a reload. It long-polls
// the fragment named by data-live with the version it shows; the agent answers when
// something changed (or after 20 s). A 401 means the login expired: go log in again.
(function () {
  "use strict";
  var main = document.getElementById("live");
  if (!main || !main.dataset.live) { return; }
  var url = main.dataset.live;
  var version = main.dataset.version || "0";
  var pause = url === "/live/watches" ? 2000 : 200;
  var swaps = 0;
  function next(delay) { setTimeout(poll, delay); }
  function poll() {
    if (main.dataset.final === "true") { return; }
    fetch(url + "?since=" + encodeURIComponent(version), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) {
          location.href = "/login?next=" + encodeURIComponent(location.pathname);
          return null;
        }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        version = r.headers.get("x-rollwatch-version") || version;
        main.dataset.final = r.headers.get("x-rollwatch-final") || "false";
        return r.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        main.innerHTML = html;
        swaps += 1;
        main.dataset.swaps = String(swaps);
        main.dataset.version = version;
        next(pause);
      })
      .catch(function () { next(5000); });
  }
  next(pause);
})();
