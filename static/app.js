// keyhold's only script of its own (htmx does the rest). Loads a chosen file (a service-account
// JSON key, a kubeconfig) into its textarea in the browser; without JavaScript, paste instead.
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
