// The customer's time zone from the browser: loaded only on the pages a customer lands on while
// they have chosen none, it sends the zone the browser reports, once (the server checks it against
// the IANA list and never overwrites a zone the customer chose). The page is not reloaded (that
// would read, and log, it again): the next page shows times in that zone, and the settings page's
// select shows it at once. Without JavaScript times stay in UTC, labelled so, until the customer
// picks a zone under "Language and time zone".
"use strict";
(function () {
  const script = document.currentScript;
  if (!script || !window.fetch || !window.Intl) {
    return;
  }
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  const sentKey = "infomediary-time-zone-sent";
  if (!zone || window.sessionStorage.getItem(sentKey) === zone) {
    return;
  }
  window.sessionStorage.setItem(sentKey, zone);
  const body = new URLSearchParams({ csrf_token: script.dataset.csrf, time_zone: zone });
  fetch(script.dataset.url, { method: "POST", body: body, credentials: "same-origin" })
    .then(function (response) {
      const select = document.getElementById("time_zone");
      if (response.status !== 204 || !select || select.dataset.chosen === "yes") {
        return;
      }
      if (Array.prototype.some.call(select.options, function (o) { return o.value === zone; })) {
        select.value = zone;
      }
    })
    .catch(function () {});
})();
