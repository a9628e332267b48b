/* Baton flow designer (flows/designer): drag and drop, keyboard moves, focus kept across redraws.
 *
 * The server draws the designer; each change is one htmx request answering the whole designer
 * (#flow-designer) again. This file only turns drags into those requests:
 *   - screens (.fd-screens) reorder          -> op=move_screen
 *   - a field card moves within or between screens (.fd-fields) -> op=move_field
 *   - a type chip dragged from the palette onto a screen        -> op=add_field at the drop position
 *   - elements (.fd-elements) reorder / a chip dropped in        -> op=move_element / op=add_element
 * Alt+ArrowUp / Alt+ArrowDown on a focused card press its move buttons. A refused change answers
 * 400 with the designer and the reason: it is swapped in like any answer.
 * Drag and drop: SortableJS 1.15.7, vendored (baton_admin/vendor/sortablejs). Static file: the
 * Content-Security-Policy forbids inline scripts.
 */
(function () {
  "use strict";

  function root() { return document.getElementById("flow-designer"); }

  /* With DEBUG on, {% htmx_script %} adds django-htmx's debug script, which on any 400 answer
   * ("htmx:beforeOnLoad", listened to on the document) replaces the whole page with the answer.
   * A refused change is the designer's to show (swapped in below), so it stops here, on <html>,
   * before bubbling to the document; stopping propagation does not cancel htmx's own handling. */
  document.documentElement.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.status === 400 && event.target.closest && event.target.closest("#fd-page")) event.stopPropagation();
  });

  function csrf() {
    var page = document.getElementById("fd-page");
    return page ? page.getAttribute("data-csrf") : "";
  }

  function post(values) {
    var r = root();
    if (!r) return;
    values.sel = values.sel || r.getAttribute("data-selection") || "flow";
    // The source is the page's frame, which stays: the designer itself is replaced by the answer.
    htmx.ajax("POST", r.getAttribute("data-edit-url"), {
      source: "#fd-page", target: "#flow-designer", swap: "outerHTML", values: values,
      headers: {"X-CSRFToken": csrf()}
    });
  }

  function indexOf(item) { return item ? item.getAttribute("data-index") : null; }

  function setUp() {
    var r = root();
    numberLines();  // read-only versions show their YAML too, numbered like a draft's
    if (!r || r.getAttribute("data-editable") !== "1" || typeof Sortable === "undefined") return;

    r.querySelectorAll("[data-palette]").forEach(function (palette) {
      Sortable.create(palette, {
        group: {name: palette.getAttribute("data-palette"), pull: "clone", put: false},
        sort: false, animation: 120
      });
    });

    var screens = r.querySelector(".fd-screens");
    if (screens) {
      Sortable.create(screens, {
        handle: ".fd-screen-handle", draggable: ".fd-screen", animation: 150,
        onEnd: function (event) {
          if (event.oldIndex === event.newIndex) return;
          post({op: "move_screen", screen: String(event.oldIndex), to: String(event.newIndex)});
        }
      });
    }

    r.querySelectorAll(".fd-fields").forEach(function (list) {
      Sortable.create(list, {
        group: {name: "fields", pull: true, put: true}, draggable: ".fd-card, .fd-chip", filter: ".fd-empty",
        animation: 150,
        onAdd: function (event) {
          var type = event.item.getAttribute("data-new-type");
          if (!type) return;  // a card from another screen: its onEnd sends the move
          var at = Array.prototype.indexOf.call(list.querySelectorAll(".fd-card, .fd-chip"), event.item);
          event.item.remove();
          post({op: "add_field", screen: list.getAttribute("data-screen"), type: type, at: String(at)});
        },
        onEnd: function (event) {
          if (event.item.getAttribute("data-new-type")) return;
          var from = event.from.getAttribute("data-screen"), to = event.to.getAttribute("data-screen");
          var position = Array.prototype.indexOf.call(event.to.querySelectorAll(".fd-card"), event.item);
          if (from === to && event.oldIndex === event.newIndex) return;
          post({op: "move_field", screen: from, field: indexOf(event.item), to_screen: to, to: String(position)});
        }
      });
    });

    var elements = r.querySelector(".fd-elements");
    if (elements) {
      Sortable.create(elements, {
        group: {name: "elements", pull: false, put: true}, draggable: ".fd-card, .fd-chip", filter: ".fd-empty",
        animation: 150,
        onAdd: function (event) {
          var type = event.item.getAttribute("data-new-type");
          var at = Array.prototype.indexOf.call(elements.querySelectorAll(".fd-card, .fd-chip"), event.item);
          event.item.remove();
          if (type) post({op: "add_element", type: type, at: String(at)});
        },
        onEnd: function (event) {
          if (event.oldIndex === event.newIndex) return;
          post({op: "move_element", index: indexOf(event.item), to: String(event.newIndex)});
        }
      });
    }
  }

  /* Line numbers beside the YAML text, so the problems' "line N" can be found. */
  function numberLines() {
    var text = document.getElementById("fd-yaml-text");
    var gutter = document.querySelector(".fd-gutter");
    if (!text || !gutter) return;
    function draw() {
      var count = text.value.split("\n").length, out = [];
      for (var i = 1; i <= count; i++) out.push(i);
      gutter.textContent = out.join("\n");
      gutter.scrollTop = text.scrollTop;
    }
    text.addEventListener("input", draw);
    text.addEventListener("scroll", function () { gutter.scrollTop = text.scrollTop; });
    draw();
  }

  /* Typing in the property panel is stored on "change". A click elsewhere in the designer blurs the box
   * (firing that change) just before its own request; the first answer would redraw the designer and the
   * click's request, queued behind it, would be dropped with its old button. So while the panel holds
   * unsaved typing, a mouse press on another control cancels the panel's own request and the control's
   * request carries the panel's values instead (as "panel-<name>"; the server applies them first). */
  var dirty = false, pressing = false;
  function panelForm() { return document.getElementById("fd-panel-form"); }
  document.addEventListener("input", function (event) {
    if (panelForm() && panelForm().contains(event.target)) dirty = true;
  });
  document.addEventListener("mousedown", function (event) {
    var control = event.target.closest && event.target.closest("[hx-post], [hx-get]");
    pressing = Boolean(dirty && control && root() && root().contains(control) &&
                       !(panelForm() && panelForm().contains(control)) && !control.closest("#fd-preview"));
  }, true);
  document.addEventListener("htmx:confirm", function (event) {
    if (pressing && event.detail.elt === panelForm()) event.preventDefault();
  });
  document.addEventListener("htmx:configRequest", function (event) {
    var form = panelForm();
    if (!pressing || !form || form.contains(event.detail.elt) || event.detail.verb !== "post") return;
    pressing = false;
    dirty = false;
    new FormData(form).forEach(function (value, name) {
      var key = "panel-" + name;
      var had = event.detail.parameters[key];
      if (had === undefined) event.detail.parameters[key] = value;
      else event.detail.parameters[key] = [].concat(had, value);
    });
  });

  /* Keyboard moves: Alt+Arrow on a card presses its move button. */
  document.addEventListener("keydown", function (event) {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    var card = event.target.closest && event.target.closest(".fd-card, .fd-screen");
    if (!card) return;
    var button = card.querySelector(event.key === "ArrowUp" ? ".fd-up" : ".fd-down");
    if (button) { event.preventDefault(); button.click(); }
  });

  /* A redraw keeps the focus (and the caret) where it was, so typing and tabbing through the panel go on. */
  var focus = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400) { event.detail.shouldSwap = true; event.detail.isError = false; }
    var active = document.activeElement;
    focus = null;
    if (active && active.id && root() && root().contains(active)) {
      focus = {id: active.id, start: active.selectionStart, end: active.selectionEnd,
               moved: active.classList.contains("fd-move")};
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    if (!root() || !root().contains(event.detail.elt) && event.detail.elt !== root()) return;
    dirty = false;
    setUp();
    if (!focus) return;
    var again = document.getElementById(focus.id);
    if (focus.moved || !again) {
      var selected = root().querySelector(".fd-selected .fd-card-title, .fd-selected > .fd-screen-head .fd-screen-title");
      again = again && !focus.moved ? again : selected;
    }
    if (again) {
      again.focus();
      if (focus.start != null && typeof again.setSelectionRange === "function") {
        try { again.setSelectionRange(focus.start, focus.end); } catch (e) { /* not a text box */ }
      }
    }
  });

  document.addEventListener("DOMContentLoaded", setUp);
})();
