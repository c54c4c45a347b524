// Policy administrators' pages: progressive enhancements only, every form works without this.
(function () {
  "use strict";

  function slugify(text) {
    return text
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 100);
  }

  // A new policy's short name follows its name until the administrator types one.
  function prefillSlugs() {
    document.querySelectorAll("input[data-slug-from]").forEach(function (slug) {
      var source = document.getElementById(slug.getAttribute("data-slug-from"));
      if (!source) { return; }
      var typedByHand = slug.value !== "";
      var follow = function () {
        if (!typedByHand) { slug.value = slugify(source.value); }
      };
      slug.addEventListener("input", function () { typedByHand = slug.value !== ""; });
      source.addEventListener("input", follow);
      // A name typed (or restored by the browser) before this script ran counts too.
      follow();
    });
  }

  // The preview shows the text as signers will see it, rendered and sanitised by the server.
  function livePreview() {
    var panel = document.querySelector("[data-preview-url]");
    if (!panel) { return; }
    var source = document.getElementById(panel.getAttribute("data-preview-source"));
    var status = document.getElementById(panel.getAttribute("data-preview-status"));
    var token = source && source.form && source.form.querySelector("input[name='csrfmiddlewaretoken']");
    if (!source || !token) { return; }
    var timer = null;
    var latest = 0;

    function refresh() {
      var request = ++latest;
      var data = new FormData();
      data.append("body", source.value);
      fetch(panel.getAttribute("data-preview-url"), {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": token.value },
      })
        .then(function (response) {
          return response.text().then(function (text) { return { ok: response.ok, text: text }; });
        })
        .then(function (result) {
          if (request !== latest) { return; } // an answer to older text arrived late
          if (result.ok) {
            panel.innerHTML = result.text;
            followEditor();
            status.textContent = panel.getAttribute("data-updated-text");
          } else {
            status.textContent = result.text || panel.getAttribute("data-failed-text");
          }
        })
        .catch(function () {
          if (request === latest) { status.textContent = panel.getAttribute("data-failed-text"); }
        });
    }

    // Keep the preview at about the same place in the text as the editor.
    function followEditor() {
      var range = source.scrollHeight - source.clientHeight;
      var share = range > 0 ? source.scrollTop / range : 0;
      panel.scrollTop = share * (panel.scrollHeight - panel.clientHeight);
    }

    source.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 400);
    });
    source.addEventListener("scroll", followEditor, { passive: true });
  }

  // Material changes are always emailed: the "email everyone" box only matters for minor ones.
  function announceFollowsKind() {
    var announce = document.querySelector("input[name='announce']");
    var kinds = document.querySelectorAll("input[name='change']");
    if (!announce || !kinds.length) { return; }
    var chosenForMinor = announce.checked;
    function update() {
      var material = document.querySelector("input[name='change'][value='material']:checked");
      if (material) {
        if (!announce.disabled) { chosenForMinor = announce.checked; }
        announce.checked = true;
        announce.disabled = true;
      } else if (announce.disabled) {
        announce.disabled = false;
        announce.checked = chosenForMinor;
      }
    }
    kinds.forEach(function (kind) { kind.addEventListener("change", update); });
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    prefillSlugs();
    livePreview();
    announceFollowsKind();
  });
})();
