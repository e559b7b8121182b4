/* The contact list: searchable filter pickers, the bulk action panels, a type-to-filter tag box and
   confirmations. Progressive enhancement only: without this file every filter is a list of checkboxes, every
   bulk panel is in view, and everything still works. Hooked on data- attributes (no inline scripts: CSP). */
(function () {
  "use strict";

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function normalized(text) {
    return (text || "").toLowerCase().replace(/\s+/g, " ").trim();
  }

  // --- Filter pickers: <div data-picker> around a list of checkboxes -------------------------------
  // Becomes a field that shows the chosen values as chips (each removable) and a text box; typing filters
  // the options, which open below it. The checkboxes stay the form's values.

  var pickerCount = 0;

  function Picker(root) {
    this.root = root;
    this.panel = root.querySelector(".picker-options");
    this.options = Array.prototype.slice.call(root.querySelectorAll(".picker-option"));
    this.groups = Array.prototype.slice.call(root.querySelectorAll(".picker-group"));
    this.active = -1;
    pickerCount += 1;

    var control = make("div", "picker-control");
    this.chips = make("span", "picker-chips");
    this.input = make("input", "picker-search");
    this.input.type = "text";
    this.input.autocomplete = "off";
    this.input.placeholder = root.dataset.placeholder || "";
    this.input.setAttribute("role", "combobox");
    this.input.setAttribute("aria-expanded", "false");
    this.input.setAttribute("aria-autocomplete", "list");
    if (!this.panel.id) this.panel.id = "picker-panel-" + pickerCount;
    this.input.setAttribute("aria-controls", this.panel.id);
    var label = root.querySelector(".picker-label");
    if (label && label.id) this.input.setAttribute("aria-labelledby", label.id);
    control.appendChild(this.chips);
    control.appendChild(this.input);
    root.insertBefore(control, this.panel);
    this.control = control;

    this.empty = make("p", "picker-empty muted small", root.dataset.emptyText || "");
    this.empty.hidden = true;
    this.panel.appendChild(this.empty);

    root.classList.add("is-enhanced");
    this.panel.hidden = true;
    this.renderChips();
    this.bind();
  }

  Picker.prototype.boxes = function () {
    return this.options.map(function (option) { return option.querySelector("input"); });
  };

  Picker.prototype.textOf = function (option) {
    return option.querySelector("span").textContent.trim();
  };

  Picker.prototype.renderChips = function () {
    var self = this;
    this.chips.textContent = "";
    this.options.forEach(function (option) {
      var box = option.querySelector("input");
      if (!box.checked) return;
      var text = self.textOf(option);
      var chip = make("span", "picker-chip");
      chip.appendChild(make("span", "", text));
      if (option.dataset.group) chip.title = option.dataset.group;
      var remove = make("button", "picker-chip-remove", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", (self.root.dataset.removeText || "Remove") + " " + text);
      remove.addEventListener("click", function (event) {
        event.stopPropagation();
        box.checked = false;
        box.dispatchEvent(new Event("change", { bubbles: true }));
        self.input.focus();
      });
      chip.appendChild(remove);
      self.chips.appendChild(chip);
    });
    this.root.classList.toggle("has-value", this.chips.childElementCount > 0);
  };

  Picker.prototype.filter = function () {
    var query = normalized(this.input.value);
    var shown = 0;
    var self = this;
    this.options.forEach(function (option) {
      var haystack = normalized((option.dataset.group || "") + " " + self.textOf(option));
      var match = !query || haystack.indexOf(query) !== -1;
      option.hidden = !match;
      option.classList.remove("is-active");
      if (match) shown += 1;
    });
    this.groups.forEach(function (group) {
      group.hidden = !group.querySelector(".picker-option:not([hidden])");
    });
    this.empty.hidden = shown > 0;
    this.active = -1;
  };

  Picker.prototype.visibleOptions = function () {
    return this.options.filter(function (option) { return !option.hidden; });
  };

  Picker.prototype.open = function () {
    if (!this.panel.hidden) return;
    this.panel.hidden = false;
    this.root.classList.add("is-open");
    this.input.setAttribute("aria-expanded", "true");
  };

  Picker.prototype.close = function () {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.root.classList.remove("is-open");
    this.input.setAttribute("aria-expanded", "false");
    this.input.value = "";
    this.filter();
  };

  Picker.prototype.move = function (step) {
    var visible = this.visibleOptions();
    if (!visible.length) return;
    var current = visible.indexOf(this.options[this.active]);
    var next = current === -1 ? (step > 0 ? 0 : visible.length - 1) : (current + step + visible.length) % visible.length;
    this.options.forEach(function (option) { option.classList.remove("is-active"); });
    var option = visible[next];
    option.classList.add("is-active");
    option.scrollIntoView({ block: "nearest" });
    this.active = this.options.indexOf(option);
  };

  Picker.prototype.bind = function () {
    var self = this;
    this.control.addEventListener("click", function () { self.input.focus(); self.open(); });
    this.input.addEventListener("focus", function () { self.open(); });
    this.input.addEventListener("input", function () { self.open(); self.filter(); });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        self.open();
        self.move(event.key === "ArrowDown" ? 1 : -1);
      } else if (event.key === "Enter") {
        var option = self.options[self.active];
        if (!self.panel.hidden && option && !option.hidden) {
          // Enter picks the highlighted option rather than submitting the filters.
          event.preventDefault();
          var box = option.querySelector("input");
          box.checked = !box.checked;
          box.dispatchEvent(new Event("change", { bubbles: true }));
        } else if (!self.panel.hidden && self.input.value) {
          event.preventDefault();
          var first = self.visibleOptions()[0];
          if (first) {
            var firstBox = first.querySelector("input");
            firstBox.checked = true;
            firstBox.dispatchEvent(new Event("change", { bubbles: true }));
            self.input.value = "";
            self.filter();
          }
        }
      } else if (event.key === "Escape") {
        if (!self.panel.hidden) {
          event.preventDefault();
          self.close();
        }
      } else if (event.key === "Backspace" && !self.input.value) {
        var checked = self.boxes().filter(function (box) { return box.checked; });
        if (checked.length) {
          var last = checked[checked.length - 1];
          last.checked = false;
          last.dispatchEvent(new Event("change", { bubbles: true }));
        }
      }
    });
    this.root.addEventListener("change", function () { self.renderChips(); });
    this.root.addEventListener("focusout", function (event) {
      if (!self.root.contains(event.relatedTarget)) self.close();
    });
    document.addEventListener("click", function (event) {
      if (!self.root.contains(event.target)) self.close();
    });
  };

  // --- A <select multiple data-select-filter>: a text box above it filters its options, and a click
  // picks or drops an option without holding Ctrl. The select stays in view and stays the form's value.

  function enhanceSelect(select) {
    var input = make("input", "select-filter");
    input.type = "text";
    input.autocomplete = "off";
    input.placeholder = select.dataset.placeholder || "";
    input.setAttribute("aria-label", input.placeholder);
    select.parentNode.insertBefore(input, select);
    input.addEventListener("input", function () {
      var query = normalized(input.value);
      Array.prototype.forEach.call(select.querySelectorAll("option"), function (option) {
        var group = option.parentNode.tagName === "OPTGROUP" ? option.parentNode.label : "";
        option.hidden = !!query && normalized(group + " " + option.textContent).indexOf(query) === -1;
      });
      Array.prototype.forEach.call(select.querySelectorAll("optgroup"), function (group) {
        group.hidden = !group.querySelector("option:not([hidden])");
      });
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") event.preventDefault();
    });
    select.addEventListener("mousedown", function (event) {
      var option = event.target;
      if (option.tagName !== "OPTION" || event.shiftKey) return;
      event.preventDefault();
      var top = select.scrollTop;
      option.selected = !option.selected;
      select.focus();
      select.scrollTop = top;
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }

  // --- Bulk actions: one panel at a time behind tabs; Enter in a panel presses that panel's button ------

  function enhanceBulk(form) {
    var holder = form.querySelector("[data-bulk-panels]");
    var panels = Array.prototype.slice.call(form.querySelectorAll("[data-bulk-panel]"));
    if (!holder || panels.length < 2) return;
    var tabs = make("div", "bulk-tabs");
    tabs.setAttribute("role", "tablist");
    var buttons = panels.map(function (panel, index) {
      var legend = panel.querySelector("legend");
      var tab = make("button", "bulk-tab", legend ? legend.textContent : panel.dataset.bulkPanel);
      tab.type = "button";
      tab.setAttribute("role", "tab");
      tab.dataset.testid = "bulk-tab-" + panel.dataset.bulkPanel;
      tab.addEventListener("click", function () { show(index); });
      tabs.appendChild(tab);
      return tab;
    });
    function show(index) {
      panels.forEach(function (panel, i) {
        panel.hidden = i !== index;
        buttons[i].setAttribute("aria-selected", i === index ? "true" : "false");
        buttons[i].classList.toggle("is-active", i === index);
      });
    }
    holder.parentNode.insertBefore(tabs, holder);
    form.classList.add("is-enhanced");
    show(0);
    form.addEventListener("keydown", function (event) {
      if (event.key !== "Enter" || event.target.tagName === "TEXTAREA" || event.target.tagName === "BUTTON") return;
      var panel = event.target.closest("[data-bulk-panel]");
      var button = panel && panel.querySelector('button[type="submit"]');
      if (button) {
        event.preventDefault();
        button.click();
      }
    });
    // Ticking a row means "the ticked rows".
    document.addEventListener("change", function (event) {
      if (event.target.name === "contact_ids" || event.target.matches("[data-select-all]")) {
        var selected = form.querySelector('input[name="scope"][value="selected"]');
        if (selected && event.target.checked) selected.checked = true;
      }
    });
  }

  // --- <form data-confirm="question">: asks before submitting (deleting a saved view) ---------------

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-picker]"), function (root) { new Picker(root); });
    Array.prototype.forEach.call(document.querySelectorAll("select[multiple][data-select-filter]"), enhanceSelect);
    Array.prototype.forEach.call(document.querySelectorAll("[data-bulk-form]"), enhanceBulk);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
