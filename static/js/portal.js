// Progressive enhancements only: every page works without this file.
(function () {
  "use strict";

  // Tell the server the viewer's time zone so times are shown in it (and recorded as evidence).
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  if (zone && document.cookie.indexOf("portal_tz=" + zone) === -1) {
    document.cookie = "portal_tz=" + encodeURIComponent(zone) + "; path=/; SameSite=Lax; max-age=31536000";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[name='browser_time_zone']").forEach(function (input) {
      input.value = zone;
    });

    // A form sent back with errors: its summary takes the focus, so it is seen and heard first;
    // each of its links moves the focus to the field it names, not only the view.
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
      summary.addEventListener("click", function (event) {
        var link = event.target.closest("a[href^='#']");
        var field = link && document.getElementById(link.getAttribute("href").slice(1));
        if (!field) { return; }
        event.preventDefault();
        var label = document.querySelector("label[for='" + field.id + "']");
        var fieldset = field.closest("fieldset");
        var legend = fieldset && fieldset.querySelector("legend");
        (legend || label || field).scrollIntoView();
        field.focus({ preventScroll: true });
      });
    }

    // Pages waiting for background work (a receipt being sealed) look again by themselves.
    var waiting = document.querySelector("[data-refresh-seconds]");
    if (waiting) {
      var seconds = parseInt(waiting.getAttribute("data-refresh-seconds"), 10) || 5;
      window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
    }

    // The table of contents starts open where there is room beside the text.
    if (window.matchMedia("(min-width: 60rem)").matches) {
      document.querySelectorAll("details[data-open-on-wide]").forEach(function (details) {
        details.open = true;
      });
    }

    // Reading progress through a policy text.
    var bar = document.querySelector(".reading-progress__bar");
    var text = document.querySelector(".policy-text");
    if (bar && text) {
      var update = function () {
        var rect = text.getBoundingClientRect();
        var total = rect.height - window.innerHeight;
        var done = total > 0 ? Math.min(1, Math.max(0, -rect.top / total)) : 1;
        bar.style.transform = "scaleX(" + done + ")";
      };
      window.addEventListener("scroll", update, { passive: true });
      window.addEventListener("resize", update);
      update();
    }
  });
})();
