// The customer's time zone from the browser: loaded only while the customer has chosen none,
// it sends the zone the browser reports once (the server checks it against the IANA list and
// never overwrites a zone the customer chose), then shows the page again in that zone unless
// the customer is already typing in it. Without JavaScript times stay in UTC, labelled so,
// until the customer picks a zone under "Language and time zone".
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
      const active = document.activeElement;
      const typing = active && active.matches("input, select, textarea");
      if (response.status === 204 && !typing) {
        window.location.reload();
      }
    })
    .catch(function () {});
})();
