// Passkeys: the WebAuthn ceremonies of the pages that carry
// data-passkey-register (add a passkey) and data-passkey-signin (sign in
// with one, or use one as the second step). The server speaks JSON; the
// browser's own JSON forms of WebAuthn's options and answers are used
// (PublicKeyCredential.parse*OptionsFromJSON, credential.toJSON()).
// Browsers without them keep the password and code forms.
(function () {
  "use strict";

  function supported() {
    return window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON &&
      PublicKeyCredential.parseRequestOptionsFromJSON;
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"] || "";
    } catch (e) {
      return "";
    }
  }

  // post sends body as JSON and resolves with the JSON answer, or rejects
  // with the message the server gave.
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body || {}),
    }).then(function (res) {
      return res.json().catch(function () {
        return { error: "Something went wrong (" + res.status + "). Reload the page and try again." };
      }).then(function (data) {
        if (!res.ok) {
          throw new Error(data.error || "Something went wrong (" + res.status + ").");
        }
        return data;
      });
    });
  }

  function problem(root, err) {
    var out = root.querySelector("[data-passkey-error]");
    if (!out) {
      return;
    }
    var text = err && err.message ? err.message : String(err);
    if (err && err.name === "NotAllowedError") {
      text = "The passkey was not used (cancelled, or it timed out).";
    } else if (err && err.name === "InvalidStateError") {
      text = "This device already has a passkey for your account.";
    }
    out.textContent = text;
    out.hidden = false;
  }

  // signIn runs a sign-in ceremony: options from begin, the browser's
  // assertion to finish, then where the server says to go.
  function signIn(root, mediation, signal) {
    return post(root.getAttribute("data-begin")).then(function (options) {
      var request = { publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey) };
      if (mediation) {
        request.mediation = mediation;
        request.signal = signal;
      }
      return navigator.credentials.get(request);
    }).then(function (credential) {
      return post(root.getAttribute("data-finish"), credential.toJSON());
    }).then(function (answer) {
      window.location.assign(answer.redirect);
    });
  }

  function setUp() {
    if (!supported()) {
      return;
    }
    document.querySelectorAll("form[data-passkey-register]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var name = form.querySelector("[name=name]").value;
        post("/account/passkeys/register/begin").then(function (options) {
          return navigator.credentials.create({
            publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
          });
        }).then(function (credential) {
          return post("/account/passkeys/register/finish?name=" + encodeURIComponent(name), credential.toJSON());
        }).then(function (answer) {
          window.location.assign(answer.redirect);
        }).catch(function (err) {
          problem(form, err);
        });
      });
    });
    document.querySelectorAll("[data-passkey-signin]").forEach(function (root) {
      root.hidden = false;
      var autofill = null;
      root.querySelector("[data-passkey-button]").addEventListener("click", function () {
        if (autofill) {
          autofill.abort(); // one WebAuthn request at a time
          autofill = null;
        }
        signIn(root).catch(function (err) {
          problem(root, err);
        });
      });
      // Autofill: offer passkeys in the email field's suggestions, where
      // the browser can (conditional mediation).
      var field = document.querySelector("input[autocomplete~=webauthn]");
      if (field && root.getAttribute("data-begin") === "/signin/passkey/begin" &&
          PublicKeyCredential.isConditionalMediationAvailable) {
        PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
          if (!available || autofill) {
            return;
          }
          autofill = new AbortController();
          signIn(root, "conditional", autofill.signal).catch(function (err) {
            if (err && err.name !== "AbortError") {
              problem(root, err);
            }
          });
        });
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
