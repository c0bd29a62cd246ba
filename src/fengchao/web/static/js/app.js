// Small behaviours the pages declare with data- attributes (the CSP forbids inline script).
(function () {
  "use strict";
  // The login page (after a logout, or a session that ended): the gate console's offline
  // copy of its page, which lists the last passages at that gate, goes.
  if (window.caches && document.querySelector("form[action='/login']")) {
    window.caches.delete("fc-console-v1").catch(function () {});
  }
  // <form data-busy="ID">: on submit, disable its button and show the element #ID.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.busy) return;
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    var busy = document.getElementById(form.dataset.busy);
    if (busy) busy.hidden = false;
  });
  // <select data-autosubmit>: choosing an option submits its form.
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });
  // <button data-confirm="question">: the form is sent only when the user agrees.
  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-confirm]") : null;
    if (target && !window.confirm(target.getAttribute("data-confirm") || "")) {
      event.preventDefault();
    }
  });
  // <button data-print>: print the page (the print stylesheet hides .noprint).
  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-print]") : null;
    if (target) window.print();
  });
})();
