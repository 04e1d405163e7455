// Gatehouse's own script: a few touches on top of htmx. Every page works
// without it; it only makes answers to htmx requests visible. It is loaded
// from a file because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  // htmx reads its settings when the document is ready, after this
  // deferred script has run. Off: what the Content-Security-Policy forbids
  // anyway (an inline <style> for request indicators, eval, scripts in
  // swapped content), and copies of pages, which hold personal data, in
  // localStorage.
  if (window.htmx) {
    htmx.config.includeIndicatorStyles = false;
    htmx.config.allowEval = false;
    htmx.config.allowScriptTags = false;
    htmx.config.historyCacheSize = 0;
  }

  // csrfToken is the page's CSRF token, as every form on it carries it
  // (the navigation's sign-out form, on every signed-in page).
  function csrfToken() {
    var field = document.querySelector('input[name="_csrf"]');
    return field ? field.value : "";
  }

  // Every htmx request carries the token in a header (htmx sends requests
  // to this site only).
  document.addEventListener("htmx:configRequest", function (evt) {
    var token = csrfToken();
    if (token) {
      evt.detail.headers["X-CSRF-Token"] = token;
    }
  });

  // show puts a message in the page's status region (announced by screen
  // readers) as text, never as HTML.
  // tone is "" (done as asked), "info", "warning" or "error".
  function show(text, tone) {
    var region = document.getElementById("status");
    if (!region || !text) {
      return;
    }
    var isError = tone === "error";
    var p = document.createElement("p");
    p.className = tone ? "flash flash-" + tone : "flash";
    p.setAttribute("data-testid", isError ? "flash-error" : "flash");
    if (tone) {
      p.setAttribute("data-tone", tone);
    }
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
    show(evt.detail && evt.detail.value, (evt.detail && evt.detail.tone) || "");
  });

  // htmx does not swap 4xx/5xx answers: say what went wrong instead of
  // doing nothing.
  document.addEventListener("htmx:responseError", function (evt) {
    show(errorText(evt.detail.xhr), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    show("Gatehouse could not be reached. Check your connection and try again.", "error");
  });

  // neighbourRow is the session row keyboard users should land on once
  // row is gone: the next one, or else the one before. Rows without a
  // Revoke button (this device) are skipped.
  function neighbourRow(row) {
    var pick = function (step) {
      for (var r = row[step]; r; r = r[step]) {
        if (r.matches("tr[data-session-id]") && r.querySelector("button")) {
          return r.getAttribute("data-session-id");
        }
      }
      return null;
    };
    return pick("nextElementSibling") || pick("previousElementSibling");
  }

  // A swap can remove the button that had the focus (a revoked row, say):
  // then the focus moves to the next row's Revoke button, or to the page's
  // [data-focus-after-swap] heading when no row is left, so keyboard users
  // keep their place. htmx swaps right after this event.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    var active = document.activeElement;
    // A disabled button (hx-disabled-elt) may already have lost the focus.
    var inTarget = !active || active === document.body || (target && target.contains(active));
    if (!evt.detail.shouldSwap || !inTarget) {
      return;
    }
    var elt = evt.detail.requestConfig && evt.detail.requestConfig.elt;
    var row = elt && elt.closest ? elt.closest("tr[data-session-id]") : null;
    var next = row ? neighbourRow(row) : null;
    setTimeout(function () {
      var now = document.activeElement;
      if (now && now !== document.body && document.contains(now)) {
        return;
      }
      var button = next && document.querySelector('tr[data-session-id="' + CSS.escape(next) + '"] button');
      if (button) {
        button.focus();
        return;
      }
      var heading = document.querySelector("[data-focus-after-swap]");
      if (heading) {
        heading.focus();
      }
    }, 0);
  });

  // Exact times (<time data-local>) come from the server in UTC; show them
  // in the browser's own time zone, which only the browser knows.
  var localFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) {
        el.textContent = localFormat.format(at);
        el.setAttribute("data-local", "done");
      }
    });
  }
  localTimes(document);
  document.addEventListener("htmx:afterSwap", function () {
    localTimes(document);
  });

  // confirmDialog is the page's one confirmation dialog, made when first
  // needed; null where the browser has no <dialog>. Cancel has the focus
  // first: the safe choice is the default one.
  function confirmDialog() {
    var dialog = document.getElementById("confirm-dialog");
    if (dialog) {
      return dialog;
    }
    dialog = document.createElement("dialog");
    if (typeof dialog.showModal !== "function") {
      return null;
    }
    dialog.id = "confirm-dialog";
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-dialog-heading");
    dialog.setAttribute("aria-describedby", "confirm-dialog-detail");
    dialog.setAttribute("data-testid", "confirm-dialog");
    // Fixed markup: the question's words go in as text (ask).
    dialog.innerHTML = '<form method="dialog"><h2 id="confirm-dialog-heading"></h2>' +
      '<p id="confirm-dialog-detail"></p><div class="confirm-actions">' +
      '<button type="submit" value="confirm" class="danger" data-testid="confirm-dialog-ok"></button> ' +
      '<button type="submit" value="cancel" class="secondary" autofocus data-testid="confirm-dialog-cancel">Cancel</button>' +
      "</div></form>";
    dialog.addEventListener("close", answered);
    document.body.appendChild(dialog);
    return dialog;
  }

  // Destructive actions (views.DangerForm) ask in the page's one dialog.
  // ask shows form's question; onConfirm runs if the user confirms.
  function ask(form, onConfirm) {
    var dialog = confirmDialog();
    if (!dialog) {
      // No dialog: the form goes to its confirmation page instead.
      return false;
    }
    var ok = dialog.querySelector('[value="confirm"]');
    dialog.querySelector("#confirm-dialog-heading").textContent = form.getAttribute("data-confirm");
    dialog.querySelector("#confirm-dialog-detail").textContent = form.getAttribute("data-confirm-detail") || "";
    ok.textContent = form.getAttribute("data-confirm-button") || "Confirm";
    asking = { dialog: dialog, form: form, onConfirm: onConfirm };
    dialog.returnValue = "";
    dialog.showModal();
    return true;
  }

  // asking is the question the dialog shows: the form and what to do if
  // the user confirms.
  var asking = null;

  // answered handles the dialog's close event. The event comes a task
  // after the dialog closes, so a question asked at once after Cancel
  // (a quick click, Escape then Enter) meets its predecessor's event while
  // the dialog is open again: that event is not its answer. (With a
  // listener per question, the stale event used up the new question's
  // listener, and its OK then did nothing.)
  function answered() {
    var q = asking;
    if (!q || q.dialog.open) {
      return;
    }
    asking = null;
    if (q.dialog.returnValue === "confirm") {
      q.onConfirm();
    } else if (document.contains(q.form)) {
      // Back to the button that opened the dialog.
      var button = q.form.querySelector("button");
      if (button) {
        button.focus();
      }
    }
  }

  // htmx asks before every request it makes: a DangerForm with hx-post
  // waits for the dialog.
  document.addEventListener("htmx:confirm", function (evt) {
    var form = evt.detail.elt;
    if (!form.hasAttribute || !form.hasAttribute("data-confirm")) {
      return;
    }
    evt.preventDefault();
    if (!ask(form, function () { evt.detail.issueRequest(true); })) {
      form.submit(); // its GET: the confirmation page
    }
  });

  // A DangerForm without htmx: once confirmed, post the action itself
  // rather than open its confirmation page.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form.hasAttribute("data-confirm") || form.hasAttribute("hx-post")) {
      return;
    }
    evt.preventDefault();
    ask(form, function () {
      var post = document.createElement("form");
      post.method = "post";
      post.action = form.getAttribute("data-confirm-post");
      post.hidden = true;
      var fields = Array.prototype.slice.call(form.querySelectorAll('input[type="hidden"]'));
      var token = document.createElement("input");
      token.type = "hidden";
      token.name = "_csrf";
      token.value = csrfToken();
      fields.forEach(function (f) { post.appendChild(f.cloneNode()); });
      post.appendChild(token);
      document.body.appendChild(post);
      post.submit();
    }) || form.submit();
  });

  // A show-password toggle after every password input: it needs this
  // script, so this script makes it.
  document.querySelectorAll('input[type="password"][id]').forEach(function (input) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "link show-password";
    button.setAttribute("data-show-password", input.id);
    button.setAttribute("aria-controls", input.id);
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Show password";
    input.after(button);
    button.addEventListener("click", function () {
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      button.setAttribute("aria-pressed", show ? "true" : "false");
      button.textContent = show ? "Hide password" : "Show password";
    });
  });
  // A password shown stays out of the form's history: hide it on submit.
  document.addEventListener("submit", function (evt) {
    evt.target.querySelectorAll("[data-show-password]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("data-show-password"));
      if (input && input.type === "text") {
        input.type = "password";
      }
    });
  });
})();
