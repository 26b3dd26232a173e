// A control marked data-auto-submit sends its form as soon as it changes (the page's <noscript> button
// does it without JavaScript). A file rather than an inline onchange: the Content-Security-Policy allows
// no inline script.
document.querySelectorAll("[data-auto-submit]").forEach(control => {
  control.addEventListener("change", () => control.form.submit());
});
