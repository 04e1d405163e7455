// Gatehouse's own script: a few touches on top of htmx. Every page works
// without it; it only makes answers to htmx requests visible. It is loaded
// from a file because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  // show puts a message in the page's status region (announced by screen
  // readers) as text, never as HTML.
  function show(text, isError) {
    var region = document.getElementById("status");
    if (!region || !text) {
      return;
    }
    var p = document.createElement("p");
    p.className = isError ? "flash flash-error" : "flash";
    p.setAttribute("data-testid", isError ? "flash-error" : "flash");
    if (isError) {
      p.setAttribute("role", "alert");
    }
    p.textContent = text;
    region.replaceChildren(p);
  }

  // errorText reads the title and message of one of our error pages.
  function errorText(xhr) {
    var fallback = "Something went wrong (" + xhr.status + "). Reload the page and try again.";
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("text/html") !== 0 || !xhr.responseText) {
      return fallback;
    }
    // A parsed document runs no script and loads nothing.
    var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
    var message = doc.querySelector('[data-testid="error-message"]');
    if (!message) {
      return fallback;
    }
    var title = doc.querySelector("main h1");
    var text = message.textContent.trim();
    return title ? title.textContent.trim() + ". " + text : text;
  }

  // The server names what just happened (HX-Trigger: {"gatehouse:flash": "…"}).
  document.addEventListener("gatehouse:flash", function (evt) {
    show(evt.detail && evt.detail.value, false);
  });

  // htmx does not swap 4xx/5xx answers: say what went wrong instead of
  // doing nothing.
  document.addEventListener("htmx:responseError", function (evt) {
    show(errorText(evt.detail.xhr), true);
  });
  document.addEventListener("htmx:sendError", function () {
    show("Gatehouse could not be reached. Check your connection and try again.", true);
  });

  // A swap can remove the button that had the focus (a revoked row, say):
  // then put the focus on the page's [data-focus-after-swap] heading, so
  // keyboard users keep their place. htmx swaps right after this event.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    var active = document.activeElement;
    // A disabled button (hx-disabled-elt) may already have lost the focus.
    var inTarget = !active || active === document.body || (target && target.contains(active));
    if (!evt.detail.shouldSwap || !inTarget) {
      return;
    }
    setTimeout(function () {
      var now = document.activeElement;
      if (now && now !== document.body && document.contains(now)) {
        return;
      }
      var heading = document.querySelector("[data-focus-after-swap]");
      if (heading) {
        heading.focus();
      }
    }, 0);
  });
})();
