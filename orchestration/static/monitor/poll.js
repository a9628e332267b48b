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
