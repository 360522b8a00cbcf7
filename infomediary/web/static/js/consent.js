// The consent screen: each kind of data says until when it is shared; when the customer
// picks another end date, every "Until" follows it (without JavaScript they show the date
// first selected, which the server renders).
"use strict";
(function () {
  const select = document.getElementById("expiry");
  if (!select) {
    return;
  }
  select.addEventListener("change", function () {
    const option = select.options[select.selectedIndex];
    const text = option ? option.dataset.until : "";
    document.querySelectorAll("[data-until-shown]").forEach(function (element) {
      element.textContent = text;
    });
  });
})();
