// Collects JavaScript errors from the first moment, so the browser test can read
// them (`window.__celeriacErrors`) whatever the WebDriver's log API offers.
'use strict';
window.__celeriacErrors = [];
window.addEventListener('error', (e) => {
  window.__celeriacErrors.push(String(e.message || e.type) + ' @ ' + (e.filename || '') + ':' + (e.lineno || 0));
});
window.addEventListener('unhandledrejection', (e) => {
  window.__celeriacErrors.push('unhandled rejection: ' + String(e.reason && (e.reason.stack || e.reason)));
});
(() => {
  const original = console.error.bind(console);
  console.error = (...args) => {
    window.__celeriacErrors.push('console.error: ' + args.map(String).join(' '));
    original(...args);
  };
})();
