// keyhold's only script of its own (htmx does the rest). Loads a chosen file (a service-account
// JSON key, a kubeconfig) into its textarea in the browser; without JavaScript, paste instead.
// Shows the part of the notification channel form that the chosen kind uses. Keeps the policy
// form's schedule select and its cron field in step.
document.addEventListener('change', function (event) {
  var input = event.target;
  if (!input.matches || !input.matches('input[type=file][data-fill]')) return;
  var target = document.getElementById(input.getAttribute('data-fill'));
  var file = input.files && input.files[0];
  if (!target || !file) return;
  if (file.size > 65536) {
    input.setCustomValidity('This file is larger than 64 KB.');
    input.reportValidity();
    return;
  }
  input.setCustomValidity('');
  file.text().then(function (text) {
    target.value = text;
    target.focus();
  });
});

// The new notification channel form shows only the part of the chosen kind; without
// JavaScript every part shows, and the server reads the one the kind needs.
function showChannelKind(select) {
  var kind = select.value;
  document.querySelectorAll('form [data-kinds]').forEach(function (part) {
    part.hidden = part.getAttribute('data-kinds').split(' ').indexOf(kind) < 0;
  });
}
document.addEventListener('change', function (event) {
  if (event.target.id === 'kind' && event.target.form && event.target.form.querySelector('[data-kinds]')) {
    showChannelKind(event.target);
  }
});
document.addEventListener('DOMContentLoaded', function () {
  var kind = document.getElementById('kind');
  if (kind && kind.form && kind.form.querySelector('[data-kinds]')) showChannelKind(kind);
});

// The policy form's schedule select fills the cron field, and follows what is typed there;
// without JavaScript the server reads the select, and the typed period when it says Custom.
document.addEventListener('change', function (event) {
  var select = event.target;
  if (select.id !== 'cron_preset') return;
  var cron = document.getElementById('cron');
  var pattern = select.selectedOptions[0] ? select.selectedOptions[0].getAttribute('data-cron') : '';
  if (!cron) return;
  if (!pattern) {
    cron.focus();
    return;
  }
  cron.value = pattern;
  cron.dispatchEvent(new Event('input', { bubbles: true }));
});
function followCron(cron) {
  var select = document.getElementById('cron_preset');
  if (!select) return;
  var typed = cron.value.trim().split(/\s+/).join(' ');
  var chosen = 'custom';
  Array.prototype.forEach.call(select.options, function (option) {
    var pattern = option.getAttribute('data-cron');
    if (pattern && (pattern === typed || option.value === typed.toLowerCase())) chosen = option.value;
  });
  select.value = chosen;
}
document.addEventListener('input', function (event) {
  if (event.target.id === 'cron') followCron(event.target);
});
document.addEventListener('DOMContentLoaded', function () {
  var cron = document.getElementById('cron');
  if (cron) followCron(cron);
});
document.addEventListener('htmx:afterSwap', function () {
  var cron = document.getElementById('cron');
  if (cron) followCron(cron);
});

// The Backups tab refreshes itself every 2 s while something runs: a request that would
// replace it while a row's menu or restore form is open waits for the next tick, so neither
// closes under the person's finger.
document.addEventListener('htmx:beforeRequest', function (event) {
  var tab = event.detail && event.detail.elt;
  if (!tab || tab.id !== 'backup-tab' || event.detail.requestConfig.verb !== 'get') return;
  if (tab.querySelector('details[open]')) {
    event.preventDefault();
  }
});

// A pasted block of credentials ("Access Key ID: …", "Secret Key: …", "Endpoint: …", as Storj
// shows them) fills the fields whose data-paste names its labels; without JavaScript the server
// reads the block the same way (`credentials::paste`) into the fields left empty, and drops it.
function readPaste(text) {
  var found = {};
  // As src/credentials/paste.rs reads it: a value is one word, so a block whose line breaks
  // were lost still gives each label its own value.
  text.split('\n').forEach(function (line) {
    var rest = line.replace(/^[\s\ufeff]+|\s+$/g, '');
    var at;
    while ((at = rest.search(/[:=]/)) >= 0) {
      var label = rest.slice(0, at).trim().split(/\s+/).join(' ').replace(/^["*-]+|["*-]+$/g, '').toLowerCase();
      var after = rest.slice(at + 1).replace(/^[:=]+/, '').replace(/^\s+/, '');
      var end = after.search(/\s/);
      if (end < 0) end = after.length;
      var value = after.slice(0, end).replace(/^["'`]+|["'`]+$/g, '');
      rest = after.slice(end).replace(/^\s+/, '');
      if (label && value && !(label in found)) found[label] = value;
    }
  });
  return found;
}
document.addEventListener('input', function (event) {
  var box = event.target;
  if (!box.matches || !box.matches('textarea[data-paste-box]')) return;
  var found = readPaste(box.value);
  var filled = [];
  box.form.querySelectorAll('[data-paste]').forEach(function (input) {
    var labels = input.getAttribute('data-paste').split('|');
    for (var i = 0; i < labels.length; i++) {
      if (labels[i] in found) {
        // What the person typed wins, as on the server; a value pasted before is replaced.
        if (input.value && !input.hasAttribute('data-pasted')) return;
        input.value = found[labels[i]];
        input.setAttribute('data-pasted', '');
        var label = box.form.querySelector('label[for="' + input.id + '"]');
        filled.push(label ? label.textContent.trim() : input.name);
        return;
      }
    }
  });
  var status = document.getElementById('paste-status');
  if (!filled.length) {
    if (status) status.textContent = box.value.trim() ? 'No known labels yet (Access Key ID, Secret Key, Endpoint).' : '';
    return;
  }
  if (status) status.textContent = 'Filled ' + filled.join(', ') + '.';
});

// A field used only while a checkbox is not ticked (GCP's Folder ID when importing a project)
// is hidden and disabled while it is; without JavaScript both show and the server's rule says
// which to leave empty.
function followUnless(form) {
  form.querySelectorAll('[data-unless]').forEach(function (field) {
    var flag = form.querySelector('#' + field.getAttribute('data-unless'));
    var unused = !!(flag && flag.checked);
    field.hidden = unused;
    field.querySelectorAll('input, select, textarea').forEach(function (input) {
      input.disabled = unused;
    });
  });
}
document.addEventListener('change', function (event) {
  var form = event.target.form;
  if (form && event.target.type === 'checkbox' && form.querySelector('[data-unless="' + event.target.id + '"]')) {
    followUnless(form);
  }
});
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('form').forEach(function (form) {
    if (form.querySelector('[data-unless]')) followUnless(form);
  });
});
