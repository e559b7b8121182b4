/* The segment rules builder: AND/OR groups of conditions, built from the field registry the page renders
   with json_script (#segment-fields), written as JSON into the form's rules textarea. Without this file the
   textarea is edited directly; the live count (htmx) works either way. */
(function () {
  "use strict";

  var NO_VALUE = ["is_true", "is_false", "is_empty"];
  var LIST = ["in", "not_in", "any", "all", "none"];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "class") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function option(value, label, selected) {
    var node = el("option", { value: String(value), text: label });
    if (selected) node.selected = true;
    return node;
  }

  function Builder(root, textarea, data) {
    this.root = root;
    this.textarea = textarea;
    this.fields = {};
    this.order = [];
    this.labels = root.dataset;
    var self = this;
    data.fields.forEach(function (field) { self.fields[field.field] = field; self.order.push(field.field); });
    this.operatorLabels = data.operators || {};
  }

  Builder.prototype.text = function (key, fallback) {
    return this.labels[key] || fallback;
  };

  Builder.prototype.load = function () {
    var rules;
    try {
      rules = JSON.parse(this.textarea.value || "{}");
    } catch (e) {
      return false;
    }
    if (!rules || typeof rules !== "object" || Array.isArray(rules)) return false;
    if (!rules.op) rules = { op: "and", rules: rules.rules || [] };
    this.root.innerHTML = "";
    this.root.appendChild(this.group(rules, true));
    return true;
  };

  Builder.prototype.changed = function () {
    this.textarea.value = JSON.stringify(this.serialize(this.root.firstElementChild), null, 2);
    document.body.dispatchEvent(new CustomEvent("rules-changed"));
  };

  Builder.prototype.serialize = function (groupNode) {
    var self = this;
    var items = [];
    groupNode.querySelector(":scope > .rb-items").childNodes.forEach(function (child) {
      if (child.classList.contains("rb-group")) items.push(self.serialize(child));
      else if (child.classList.contains("rb-condition")) items.push(self.conditionValue(child));
    });
    return { op: groupNode.querySelector(":scope > .rb-group-head select").value, rules: items };
  };

  // Each group and condition carries its path in the rules (rules[1].rules[0]), as the server names it.
  Builder.prototype.renumber = function (groupNode, path) {
    var self = this;
    var prefix = path ? path + ".rules" : "rules";
    groupNode.dataset.path = path;
    var index = 0;
    groupNode.querySelector(":scope > .rb-items").childNodes.forEach(function (child) {
      var childPath = prefix + "[" + index + "]";
      child.dataset.path = childPath;
      if (child.classList.contains("rb-group")) self.renumber(child, childPath);
      index += 1;
    });
  };

  Builder.prototype.group = function (rules, isRoot) {
    var self = this;
    var op = el("select", { "aria-label": this.text("opLabel", "Match"), "data-testid": "rule-group-op" }, [
      option("and", this.text("opAnd", "all of these (AND)"), rules.op !== "or"),
      option("or", this.text("opOr", "any of these (OR)"), rules.op === "or"),
    ]);
    var items = el("div", { class: "rb-items" });
    var addCondition = el("button", { type: "button", class: "btn btn-sm", "data-testid": "rule-add-condition", text: this.text("addCondition", "+ Condition") });
    var addGroup = el("button", { type: "button", class: "btn btn-sm btn-ghost", "data-testid": "rule-add-group", text: this.text("addGroup", "+ Group") });
    var head = el("div", { class: "rb-group-head" }, [el("span", { class: "muted", text: this.text("matchLabel", "Contacts matching") }), op]);
    if (!isRoot) {
      var remove = el("button", { type: "button", class: "btn-icon", title: this.text("remove", "Remove"), "aria-label": this.text("removeGroup", "Remove group"), text: "×" });
      remove.addEventListener("click", function () { node.remove(); self.refresh(); });
      head.appendChild(remove);
    }
    var node = el("div", { class: "rb-group" + (isRoot ? " rb-root" : ""), "data-testid": "rule-group" }, [
      head,
      items,
      el("div", { class: "rb-group-foot" }, [addCondition, addGroup]),
    ]);
    (rules.rules || []).forEach(function (item) {
      items.appendChild(item && (item.op || item.rules) ? self.group(item, false) : self.condition(item || {}));
    });
    op.addEventListener("change", function () { self.changed(); });
    addCondition.addEventListener("click", function () {
      items.appendChild(self.condition({}));
      self.refresh();
    });
    addGroup.addEventListener("click", function () {
      items.appendChild(self.group({ op: "or", rules: [{}] }, false));
      self.refresh();
    });
    return node;
  };

  Builder.prototype.refresh = function () {
    this.renumber(this.root.firstElementChild, "");
    this.changed();
  };

  Builder.prototype.condition = function (rule) {
    var self = this;
    var fieldName = this.fields[rule.field] ? rule.field : this.order[0];
    var fieldSelect = el("select", { class: "rb-field", "aria-label": this.text("fieldLabel", "Field"), "data-testid": "rule-field" });
    this.order.forEach(function (name) { fieldSelect.appendChild(option(name, self.fields[name].label, name === fieldName)); });
    var opSelect = el("select", { class: "rb-operator", "aria-label": this.text("operatorLabel", "Operator"), "data-testid": "rule-operator" });
    var valueBox = el("span", { class: "rb-value" });
    var help = el("small", { class: "help rb-help" });
    var remove = el("button", { type: "button", class: "btn-icon", title: this.text("remove", "Remove"), "aria-label": this.text("removeCondition", "Remove condition"), text: "×" });
    var node = el("div", { class: "rb-condition", "data-testid": "rule-condition" }, [fieldSelect, opSelect, valueBox, remove, help]);

    function fillOperators(selected) {
      var field = self.fields[fieldSelect.value];
      opSelect.innerHTML = "";
      field.operators.forEach(function (op) {
        opSelect.appendChild(option(op, self.operatorLabels[op] || op, op === selected));
      });
      help.textContent = field.help_text || "";
    }

    function fillValue(value) {
      var field = self.fields[fieldSelect.value];
      var op = opSelect.value;
      valueBox.innerHTML = "";
      if (NO_VALUE.indexOf(op) >= 0) return;
      if (LIST.indexOf(op) >= 0 && field.choices) {
        var select = el("select", { multiple: "multiple", size: String(Math.max(3, Math.min(6, field.choices.length))), class: "rb-input", "data-testid": "rule-value" });
        var chosen = (Array.isArray(value) ? value : []).map(String);
        field.choices.forEach(function (choice) {
          select.appendChild(option(choice.value, choice.label, chosen.indexOf(String(choice.value)) >= 0));
        });
        valueBox.appendChild(select);
        return;
      }
      if (LIST.indexOf(op) >= 0) {
        valueBox.appendChild(el("input", {
          type: "text", class: "rb-input", "data-testid": "rule-value",
          placeholder: self.text("listPlaceholder", "comma-separated"),
          value: Array.isArray(value) ? value.join(", ") : (value || ""),
        }));
        return;
      }
      var type = { int: "number", amount: "number", date: "date" }[field.input] || "text";
      var attrs = { type: type, class: "rb-input", "data-testid": "rule-value" };
      if (field.input === "amount") attrs.step = "0.01";
      if (field.input === "int" || field.input === "amount") attrs.min = "0";
      if (op === "between") {
        var pair = Array.isArray(value) ? value : ["", ""];
        valueBox.appendChild(el("input", Object.assign({}, attrs, { value: pair[0] == null ? "" : pair[0], "aria-label": self.text("from", "from") })));
        valueBox.appendChild(el("span", { class: "muted", text: "–" }));
        valueBox.appendChild(el("input", Object.assign({}, attrs, { value: pair[1] == null ? "" : pair[1], "aria-label": self.text("to", "to"), "data-testid": "rule-value-to" })));
        return;
      }
      valueBox.appendChild(el("input", Object.assign(attrs, { value: value == null || Array.isArray(value) ? "" : value })));
    }

    fillOperators(rule.operator);
    fillValue(rule.value);
    fieldSelect.addEventListener("change", function () { fillOperators(); fillValue(); self.changed(); });
    opSelect.addEventListener("change", function () { fillValue(); self.changed(); });
    valueBox.addEventListener("change", function () { self.changed(); });
    valueBox.addEventListener("input", function () { self.changed(); });
    remove.addEventListener("click", function () { node.remove(); self.refresh(); });
    node._field = fieldSelect;
    node._op = opSelect;
    node._value = valueBox;
    return node;
  };

  function scalar(input, kind) {
    var raw = input.value.trim();
    if (raw === "") return null;
    if (kind === "int") {
      var n = Number(raw);
      return Number.isInteger(n) ? n : raw;
    }
    return raw; // amounts stay text ("199.00"), dates are YYYY-MM-DD
  }

  Builder.prototype.conditionValue = function (node) {
    var field = this.fields[node._field.value];
    var op = node._op.value;
    var rule = { field: node._field.value, operator: op };
    if (NO_VALUE.indexOf(op) >= 0) return rule;
    var inputs = node._value.querySelectorAll(".rb-input");
    if (LIST.indexOf(op) >= 0 && field.choices) {
      var byValue = {};
      field.choices.forEach(function (choice) { byValue[String(choice.value)] = choice.value; });
      rule.value = Array.prototype.map.call(inputs[0].selectedOptions, function (opt) { return byValue[opt.value]; });
    } else if (LIST.indexOf(op) >= 0) {
      rule.value = inputs[0].value.split(/[,，、]/).map(function (s) { return s.trim(); }).filter(Boolean);
    } else if (op === "between") {
      rule.value = [scalar(inputs[0], field.input), scalar(inputs[1], field.input)];
    } else {
      rule.value = scalar(inputs[0], field.input);
    }
    return rule;
  };

  // Problems reported by the count endpoint name a path (rules[1].value): mark that condition or group.
  function markErrors(root) {
    root.querySelectorAll(".rb-error").forEach(function (node) { node.classList.remove("rb-error"); });
    document.querySelectorAll("#segment-count [data-path]").forEach(function (item) {
      var path = item.dataset.path.replace(/\.(field|operator|value|op|rules)$/, "");
      var target = root.querySelector('[data-path="' + path + '"]');
      if (target) target.classList.add("rb-error");
    });
  }

  function start() {
    var root = document.getElementById("rules-builder");
    var data = document.getElementById("segment-fields");
    var textarea = root && document.getElementById(root.dataset.target);
    if (!root || !data || !textarea) return;
    var builder = new Builder(root, textarea, JSON.parse(data.textContent));
    if (!builder.load()) return; // invalid JSON: the textarea stays the editor, the count names the problem
    builder.renumber(root.firstElementChild, "");
    root.hidden = false;
    var raw = document.getElementById("rules-json");
    if (raw) raw.open = false;
    textarea.addEventListener("change", function () {
      if (builder.load()) builder.renumber(root.firstElementChild, "");
    });
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail.target && event.detail.target.id === "segment-count") markErrors(root);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
