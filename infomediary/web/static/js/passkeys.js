// Passkeys: a form marked data-passkey="register" or "login" first asks the server for the
// ceremony's options (form-encoded, with the form's CSRF token and its password field, when it
// has one), lets the browser create or
// use the passkey, then submits the form with the credential as JSON (base64url fields).
(function () {
  "use strict";

  function toBytes(value) {
    var text = value.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) { text += "="; }
    var raw = atob(text);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i += 1) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i += 1) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: options };
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: options };
  }

  function serialise(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (credential.authenticatorAttachment) {
      out.authenticatorAttachment = credential.authenticatorAttachment;
    }
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      if (response.userHandle) { out.response.userHandle = toText(response.userHandle); }
    }
    return JSON.stringify(out);
  }

  function say(form, text) {
    var status = form.querySelector("[data-passkey-status]");
    if (status) { status.textContent = text; }
  }

  function start(form, event) {
    event.preventDefault();
    if (!window.PublicKeyCredential) {
      say(form, form.dataset.unsupported || "");
      return;
    }
    var body = new URLSearchParams();
    body.set("csrf_token", form.querySelector("input[name=csrf_token]").value);
    var password = form.querySelector("input[name=password]");
    if (password) { body.set("password", password.value); }
    var refusal = "";
    fetch(form.dataset.options, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(function (answer) {
      if (!answer.ok) {
        // a refusal names its reason (a wrong password): shown, the form kept as it is
        return answer.json().catch(function () { return {}; }).then(function (error) {
          refusal = error.message || "";
          throw new Error("options");
        });
      }
      return answer.json();
    }).then(function (options) {
      if (form.dataset.passkey === "register") {
        return navigator.credentials.create(creationOptions(options));
      }
      return navigator.credentials.get(requestOptions(options));
    }).then(function (credential) {
      form.querySelector("input[name=credential]").value = serialise(credential);
      form.submit();
    }).catch(function () {
      say(form, refusal || form.dataset.failed || "");
      if (refusal && password) { password.focus(); }
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.addEventListener("submit", function (event) { start(form, event); });
  });
}());
