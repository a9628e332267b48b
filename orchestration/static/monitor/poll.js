// Polling panels (hx-trigger="every Ns") skip a refresh while the user is
// reading or typing in them: an element with data-poll-pause-while="SELECTOR"
// is not refreshed while SELECTOR matches something (an open <details>, the
// focused control). This replaces an htmx trigger filter, which htmx runs
// through Function() and a Content-Security-Policy without 'unsafe-eval'
// forbids.
document.addEventListener("htmx:beforeRequest", function (event) {
  var source = event.detail && event.detail.elt;
  var selector = source && source.getAttribute && source.getAttribute("data-poll-pause-while");
  if (selector && document.querySelector(selector)) {
    event.preventDefault();
  }
});

// A wait step's webhook URL: focusing the box selects it all, and Copy puts it on the clipboard
// (the box stays selected where the Clipboard API is not allowed, ready for Ctrl+C).
document.addEventListener("focusin", function (event) {
  if (event.target.matches && event.target.matches("input[data-select-on-focus]")) {
    event.target.select();
  }
});
document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("[data-copy-webhook]");
  if (!button) return;
  var input = button.parentNode.querySelector("input.webhook-url");
  input.focus();
  input.select();
  var done = function () { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, function () {});
  } else if (document.execCommand && document.execCommand("copy")) {
    done();
  }
});
