/* Baton definition admin: show only the fields that apply to an element's kind.
 *
 * A select with data-baton-kind='{"stage": ["next", "@steps"], "decision": ["default_goto"]}'
 * (set by flows.admin.KindDependentForm) decides which fields of its own form
 * apply: a field named under some value but not under the chosen one is
 * hidden (class baton-hidden), with its line and fieldset when nothing in
 * them is left. "@steps" names a nested inline group. The server resets such fields on save, so
 * hiding loses nothing that would have been kept.
 *
 * A flow select with data-baton-flow-type-by='{"selector": "type", "types":
 * {"interactive": "screen", ...}}' offers only the flows of the type its
 * step's selector asks for.
 *
 * Rows added with "Add another" are handled too (a MutationObserver), and a
 * change to any selector re-applies its form. Loaded as a static file: the
 * Content-Security-Policy forbids inline scripts.
 */
(function () {
  "use strict";

  function isTemplate(name) {
    return !name || name.indexOf("__prefix__") !== -1 || name.indexOf("-empty-") !== -1;
  }

  function prefixOf(select) {
    var name = select.name;
    var cut = name.lastIndexOf("-");
    return cut === -1 ? "" : name.slice(0, cut + 1);
  }

  function fieldUnit(form, prefix, field) {
    if (field.charAt(0) === "@") {
      var total = form.querySelector('[name="' + prefix + field.slice(1) + '-TOTAL_FORMS"]');
      return total ? total.closest(".djn-group") : null;
    }
    var widget = form.querySelector('[name="' + prefix + field + '"]');
    if (!widget) return null;
    var cell = widget.closest("td");
    if (cell) return cell;  // tabular inline: keep the column, hide the value
    var box = widget.closest(".flex-container");
    return box ? box.parentElement : null;
  }

  function setShown(unit, shown) {
    if (unit.tagName === "TD") {
      unit.classList.toggle("baton-not-applying", !shown);
    } else {
      unit.classList.toggle("baton-hidden", !shown);
    }
  }

  function tidy(root) {
    // A line whose fields are all hidden goes, then a fieldset with no line left.
    root.querySelectorAll(".form-row").forEach(function (row) {
      var boxes = row.querySelectorAll(".flex-container:not(.form-multiline)");
      var units = Array.prototype.filter.call(boxes, function (box) {
        return box.closest(".form-row") === row;
      }).map(function (box) { return box.parentElement; });
      if (!units.length) return;
      row.classList.toggle("baton-hidden", units.every(function (unit) {
        return unit.classList.contains("baton-hidden");
      }));
    });
    root.querySelectorAll("fieldset.module.aligned").forEach(function (fieldset) {
      var rows = Array.prototype.filter.call(fieldset.querySelectorAll(".form-row"), function (row) {
        return row.closest("fieldset") === fieldset && !row.classList.contains("hidden");
      });
      if (!rows.length) return;
      fieldset.classList.toggle("baton-hidden", rows.every(function (row) {
        return row.classList.contains("baton-hidden");
      }));
    });
  }

  function formOf(select) {
    return select.closest(".djn-inline-form") || select.form || document;
  }

  function applyForm(form, prefix) {
    // Every selector of this form (same prefix) together: a field shows when every selector naming it allows it.
    var verdict = {};
    form.querySelectorAll("select[data-baton-kind]").forEach(function (select) {
      if (isTemplate(select.name) || prefixOf(select) !== prefix) return;
      var map = JSON.parse(select.getAttribute("data-baton-kind"));
      var allowed = map[select.value];
      Object.keys(map).forEach(function (value) {
        map[value].forEach(function (field) {
          if (!(field in verdict)) verdict[field] = true;
          if (allowed && allowed.indexOf(field) === -1) verdict[field] = false;
        });
      });
    });
    Object.keys(verdict).forEach(function (field) {
      var unit = fieldUnit(form, prefix, field);
      if (unit) setShown(unit, verdict[field]);
    });
  }

  function filterFlows(flowSelect) {
    var rule = JSON.parse(flowSelect.getAttribute("data-baton-flow-type-by"));
    var prefix = prefixOf(flowSelect);
    var selector = formOf(flowSelect).querySelector('[name="' + prefix + rule.selector + '"]');
    if (!selector) return;
    var wanted = rule.types[selector.value];
    Array.prototype.forEach.call(flowSelect.options, function (option) {
      var type = option.getAttribute("data-flow-type");
      var fits = !wanted || !type || type === wanted;
      option.hidden = !fits;
      option.disabled = !fits;
    });
    Array.prototype.forEach.call(flowSelect.querySelectorAll("optgroup"), function (group) {
      group.hidden = !Array.prototype.some.call(group.children, function (o) { return !o.hidden; });
    });
    var chosen = flowSelect.options[flowSelect.selectedIndex];
    if (chosen && chosen.hidden) flowSelect.value = "";
  }

  function applyAll() {
    var seen = [];
    document.querySelectorAll("select[data-baton-kind]").forEach(function (select) {
      if (isTemplate(select.name)) return;
      var key = prefixOf(select);
      if (seen.indexOf(key) !== -1) return;
      seen.push(key);
      applyForm(formOf(select), key);
    });
    document.querySelectorAll("select[data-baton-flow-type-by]").forEach(function (select) {
      if (!isTemplate(select.name)) filterFlows(select);
    });
    tidy(document);
  }

  var pending = false;
  function applySoon() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; applyAll(); });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-baton-kind]")) applyAll();
  });

  document.addEventListener("DOMContentLoaded", function () {
    applyAll();
    var main = document.getElementById("content-main") || document.body;
    new MutationObserver(function (records) {
      var added = records.some(function (r) { return r.addedNodes.length; });
      if (added) applySoon();
    }).observe(main, {childList: true, subtree: true});
  });
})();
