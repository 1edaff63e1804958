// Switchyard console: progressive enhancement only; every page works without it.
// - Forms with data-confirm ask first.
// - An element with data-live="url" is replaced, every second, by the same element as the
//   server renders it at that URL, until the server marks it data-final="true".
"use strict";
(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function follow(element) {
    var url = element.getAttribute("data-live");
    if (!url || element.getAttribute("data-final") === "true") {
      return;
    }
    window.setTimeout(function () {
      fetch(url, { headers: { "x-console-fetch": "1" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.text();
        })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById(element.id);
          if (fresh) {
            element.replaceWith(fresh);
            follow(fresh);
          }
        })
        .catch(function () {
          // Try again later: a deploy or a dropped connection should not stop the updates.
          window.setTimeout(function () { follow(element); }, 4000);
        });
    }, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(follow);
  });
})();
