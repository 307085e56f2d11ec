// Passkeys (WebAuthn), loaded only by the two pages that use them: adding one on
// /account/mfa, and signing in with one on /login/mfa. Each is two same-origin JSON requests
// (CSRF token in a header): the options for navigator.credentials, then the authenticator's
// answer. Without JavaScript these forms stay hidden and the code from the authenticator app
// is the way in.
(function () {
  'use strict';

  function fromBase64url(text) {
    var base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    var binary = atob(base64 + '==='.slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = '';
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function post(form, url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': form.getAttribute('data-csrf')},
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (!response.ok) throw new Error(answer.detail || ('The server answered ' + response.status + '.'));
        return answer;
      });
    });
  }

  function say(form, message) {
    var error = form.querySelector('[data-passkey-error]');
    error.textContent = message;
    error.hidden = !message;
    if (message) error.focus();
  }

  function failed(form, button) {
    return function (error) {
      button.disabled = false;
      // The browser's own refusals (cancelled, timed out) are DOMExceptions.
      var message = error && error.name === 'NotAllowedError'
        ? 'The passkey request was cancelled or timed out. Try again, or use the code.'
        : error && error.name === 'InvalidStateError'
          ? 'This authenticator holds one of your passkeys already.'
          : (error && error.message) || 'The passkey did not work.';
      say(form, message);
    };
  }

  // The page's origin must be the one passkeys are bound to (KEYHOLD_PUBLIC_URL).
  function usable(form) {
    if (!window.PublicKeyCredential) {
      say(form, 'This browser cannot use passkeys.');
      return false;
    }
    var origin = form.getAttribute('data-origin');
    if (origin && origin !== window.location.origin) {
      say(form, 'Passkeys work at ' + origin + ' (KEYHOLD_PUBLIC_URL): open keyhold there.');
      return false;
    }
    return true;
  }

  function register(form) {
    var button = form.querySelector('button[type=submit]');
    var name = form.querySelector('input[name=name]').value;
    var password = form.querySelector('input[name=password]');
    button.disabled = true;
    say(form, '');
    post(form, '/account/passkeys/options', {password: password.value}).then(function (options) {
      password.value = '';
      var key = options.publicKey;
      key.challenge = fromBase64url(key.challenge);
      key.user.id = fromBase64url(key.user.id);
      (key.excludeCredentials || []).forEach(function (item) { item.id = fromBase64url(item.id); });
      return navigator.credentials.create({publicKey: key});
    }).then(function (credential) {
      return post(form, '/account/passkeys', {
        name: name,
        credential: {
          id: credential.id,
          rawId: toBase64url(credential.rawId),
          type: credential.type,
          extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
          response: {
            attestationObject: toBase64url(credential.response.attestationObject),
            clientDataJSON: toBase64url(credential.response.clientDataJSON),
            transports: credential.response.getTransports ? credential.response.getTransports() : undefined
          }
        }
      });
    }).then(function (answer) {
      window.location.assign(answer.redirect);
    }).catch(failed(form, button));
  }

  function signIn(form) {
    var button = form.querySelector('button[type=submit]');
    button.disabled = true;
    say(form, '');
    post(form, '/login/mfa/passkey/options').then(function (options) {
      var key = options.publicKey;
      key.challenge = fromBase64url(key.challenge);
      (key.allowCredentials || []).forEach(function (item) { item.id = fromBase64url(item.id); });
      return navigator.credentials.get({publicKey: key});
    }).then(function (assertion) {
      return post(form, '/login/mfa/passkey', {
        id: assertion.id,
        rawId: toBase64url(assertion.rawId),
        type: assertion.type,
        extensions: assertion.getClientExtensionResults ? assertion.getClientExtensionResults() : {},
        response: {
          authenticatorData: toBase64url(assertion.response.authenticatorData),
          clientDataJSON: toBase64url(assertion.response.clientDataJSON),
          signature: toBase64url(assertion.response.signature),
          userHandle: assertion.response.userHandle ? toBase64url(assertion.response.userHandle) : null
        }
      });
    }).then(function (answer) {
      window.location.assign(answer.redirect);
    }).catch(failed(form, button));
  }

  document.addEventListener('DOMContentLoaded', function () {
    [['passkey-add', register], ['passkey-sign-in', signIn]].forEach(function (pair) {
      var form = document.getElementById(pair[0]);
      if (!form) return;
      form.hidden = false;
      if (!usable(form)) {
        form.querySelector('button[type=submit]').disabled = true;
        return;
      }
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        pair[1](form);
      });
    });
  });
})();
