/* The contact page as a workspace, and the task list: small helpers hooked on data- attributes (the
   Content-Security-Policy allows no inline handlers). Every form works without this file. */
(function () {
  "use strict";

  function byId(id) { return id ? document.getElementById(id) : null; }

  function focusFirstField(container) {
    if (!container) return;
    var field = container.querySelector(".has-error input, .has-error select, .has-error textarea") ||
      container.querySelector("input:not([type=hidden]):not([type=search]), select, textarea");
    if (field) field.focus();
  }

  document.addEventListener("click", function (event) {
    // <a data-open-details="new-task">: open that <details> (a new-task form), bring it into view.
    var opener = event.target.closest("[data-open-details]");
    if (opener) {
      var details = byId(opener.dataset.openDetails);
      if (details) {
        event.preventDefault();
        details.open = true;
        details.scrollIntoView({ block: "center" });
        focusFirstField(details.querySelector("form"));
      }
      return;
    }
    // <button data-close-details="profile-edit">: a form's Cancel closes its <details>.
    var closer = event.target.closest("[data-close-details]");
    if (closer) {
      var open = byId(closer.dataset.closeDetails);
      if (open) open.open = false;
      return;
    }
    // <a data-focus="id_note-text">: jump to a field and put the cursor in it.
    var focuser = event.target.closest("[data-focus]");
    if (focuser) {
      var field = byId(focuser.dataset.focus);
      if (field) {
        event.preventDefault();
        field.scrollIntoView({ block: "center" });
        field.focus();
      }
      return;
    }
    // <button data-confirm="…">: ask before a heavy action.
    var confirmer = event.target.closest("[data-confirm]");
    if (confirmer && !window.confirm(confirmer.dataset.confirm)) event.preventDefault();
  });

  // An opened <details> form gets the cursor in its first field.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (details.tagName === "DETAILS" && details.open && details.matches(".profile-edit, .followup-new-task, .task-new, .task-complete")) {
      focusFirstField(details.querySelector("form"));
    }
  }, true);
})();
