/* Small progressive enhancements; every page works without this file. */
(function () {
  "use strict";

  // "Select all on page" checkboxes: <input type="checkbox" data-select-all="contact_ids">.
  function boxesFor(master) {
    return Array.prototype.slice.call(
      document.querySelectorAll('input[type="checkbox"][name="' + master.dataset.selectAll + '"]')
    );
  }

  function refreshCount(name) {
    var label = document.querySelector("[data-selected-count]");
    if (!label) return;
    var n = document.querySelectorAll('input[type="checkbox"][name="' + name + '"]:checked').length;
    if (!label.dataset.idle) label.dataset.idle = label.textContent;
    label.textContent = n ? (label.dataset.template || "{n}").replace("{n}", n) : label.dataset.idle;
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("input[data-select-all]")) {
      boxesFor(target).forEach(function (box) { box.checked = target.checked; });
      refreshCount(target.dataset.selectAll);
      return;
    }
    var master = target.name && document.querySelector('input[data-select-all="' + target.name + '"]');
    if (master) {
      var boxes = boxesFor(master);
      var checked = boxes.filter(function (box) { return box.checked; }).length;
      master.checked = checked === boxes.length && checked > 0;
      master.indeterminate = checked > 0 && checked < boxes.length;
      refreshCount(target.name);
    }
  });

  // Read-only values to copy (the WeCom callback URL): <input readonly data-select-on-click>. An event
  // listener rather than an onclick attribute, which the Content-Security-Policy forbids.
  document.addEventListener("click", function (event) {
    if (event.target.matches("input[data-select-on-click]")) event.target.select();
  });
})();
