/* Orchestration Builder: drag and drop, fields by kind, expression checks as you type.
 *
 * The server renders everything (orchestration/builder/views.py); this file
 * only turns gestures into the same htmx requests the buttons send:
 *  - SortableJS (vendored) on the path (stages and decisions) and on each
 *    stage's steps: a drop POSTs op=move_element / op=move_step with the new index;
 *  - a select carrying data-baton-kind (flows.admin.KindDependentForm) hides
 *    the fields its chosen value does not use; changing a step's type or a
 *    flow re-renders the panel (refresh=1: nothing saved) so the flow list
 *    and the flow's inputs follow;
 *  - expression boxes are checked by the server 400 ms after typing stops;
 *  - "names in scope" buttons insert into the last expression box used;
 *  - the assignee box searches users, groups or queues as you type.
 * A static file, never inline: the Content-Security-Policy forbids inline scripts.
 */
(function () {
  "use strict";

  if (window.htmx) {
    // Refusals come back as 400/409 with the workspace and the message: show them.
    htmx.config.responseHandling = [
      {code: "204", swap: false},
      {code: "[23]..", swap: true},
      {code: "40[09]", swap: true, error: false},
      {code: "...", swap: false, error: true}
    ];
  }

  /* With DEBUG on, {% htmx_script %} adds django-htmx's debug script, which on any 400 answer
   * ("htmx:beforeOnLoad", listened to on the document) replaces the whole page with the answer:
   * a refused edit became an unstyled fragment and the next Apply a plain GET. A refusal is ours
   * to show, so it stops here, on <html>, before bubbling to the document. Stopping propagation
   * does not cancel the event: htmx goes on and swaps the answer as responseHandling says. */
  document.documentElement.addEventListener("htmx:beforeOnLoad", function (evt) {
    var xhr = evt.detail && evt.detail.xhr;
    if (xhr && xhr.status === 400 && evt.target.closest && evt.target.closest("#bb-root")) evt.stopPropagation();
  });

  function root() { return document.getElementById("bb-root"); }

  function post(values) {
    var selected = document.querySelector(".bb-panel-form input[name=selected]");
    if (selected && !values.selected) values.selected = selected.value;
    return htmx.ajax("POST", root().dataset.changeUrl, {source: root(), target: "#bb-workspace", values: values});
  }

  function initSortable(scope) {
    if (!window.Sortable) return;
    var canvas = scope.querySelector(".bb-canvas");
    if (!canvas || !scope.querySelector(".bb-grip")) return;  // read-only versions have no grips
    Sortable.create(canvas, {
      handle: ".bb-grip", draggable: ".bb-element", animation: 120,
      onEnd: function (evt) {
        if (evt.oldDraggableIndex === evt.newDraggableIndex) return;
        post({op: "move_element", element: evt.item.dataset.pk, index: String(evt.newDraggableIndex)});
      }
    });
    scope.querySelectorAll(".bb-steps").forEach(function (list) {
      Sortable.create(list, {
        group: "bb-steps", draggable: ".bb-step", animation: 120, filter: "button.bb-icon", preventOnFilter: false,
        onEnd: function (evt) {
          if (evt.from === evt.to && evt.oldIndex === evt.newIndex) return;
          post({op: "move_step", step: evt.item.dataset.pk, stage: evt.to.dataset.stage, index: String(evt.newIndex)});
        }
      });
    });
  }

  function fieldOf(form, name) { return form.querySelector('[data-field="' + name + '"]'); }

  /* A field is hidden when any selector whose map names it has chosen a value that does not
   * (selectors nest: a wait step's type shows the wait fields, its wait kind picks one of them).
   * A selector inside a .bb-kind-scope (an outcome row) governs only the fields of that scope. */
  function applyKinds(form) {
    var hide = new Set();
    form.querySelectorAll("[data-baton-kind]").forEach(function (select) {
      var map = JSON.parse(select.dataset.batonKind);
      var chosen = select.value;
      if (select.type === "radio" || select.tagName === "DIV") {
        if (!select.checked && select.type === "radio" && form.querySelector('input[name="' + select.name + '"]:checked')) return;
        var checked = form.querySelector('input[name="' + select.getAttribute("name") + '"]:checked');
        chosen = checked ? checked.value : "";
      }
      if (!(chosen in map)) return;
      var scope = select.closest(".bb-kind-scope") || form;
      Object.keys(map).forEach(function (value) {
        if (value === chosen) return;
        map[value].forEach(function (name) {
          if (map[chosen].indexOf(name) !== -1) return;
          scope.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { hide.add(el); });
        });
      });
    });
    form.querySelectorAll("[data-field]").forEach(function (el) { el.classList.toggle("bb-hidden", hide.has(el)); });
    form.querySelectorAll(".bb-group").forEach(function (group) {
      var fields = group.querySelectorAll(".bb-field");
      if (!fields.length) return;
      var visible = Array.prototype.some.call(fields, function (f) { return !f.closest(".bb-hidden"); });
      group.classList.toggle("bb-group-empty", !visible);
    });
  }

  function refreshPanel(form) {
    var values = {refresh: "1"};
    new FormData(form).forEach(function (value, key) {
      if (key in values) { values[key] = [].concat(values[key], value); } else { values[key] = value; }
    });
    htmx.ajax("POST", form.dataset.refreshUrl, {source: form, target: "#bb-workspace", values: values});
  }

  var lastExpression = null;
  var timers = new WeakMap();

  function whatOf(box) {
    var holder = box.closest("[data-what]");
    return holder ? holder.dataset.what : "";
  }

  function checkExpression(box) {
    var form = box.closest(".bb-panel-form");
    var holder = box.closest(".bb-field");
    var out = holder && holder.querySelector(".bb-expr-check");
    if (!form || !out || !whatOf(box)) return;
    if (whatOf(box) === "assignee.expr") {
      var kind = form.querySelector('[name$="assignee_type"]');
      if (!kind || kind.value !== "expr") { out.textContent = ""; return; }
    }
    htmx.ajax("POST", root().dataset.checkUrl, {
      source: box, target: out, swap: "innerHTML",
      values: {source: box.value, element: form.dataset.element, what: whatOf(box)}
    });
  }

  function searchAssignees(box) {
    var form = box.closest(".bb-panel-form");
    var kind = form && form.querySelector('[name$="assignee_type"]');
    var list = document.getElementById(box.getAttribute("list"));
    if (!kind || !list || ["user", "group", "queue"].indexOf(kind.value) === -1) return;
    var url = root().dataset.assigneesUrl + "?kind=" + encodeURIComponent(kind.value) + "&q=" + encodeURIComponent(box.value);
    htmx.ajax("GET", url, {source: box, target: list, swap: "innerHTML"});
  }

  function later(box, fn) {
    clearTimeout(timers.get(box));
    timers.set(box, setTimeout(function () { fn(box); }, 400));
  }

  /* Goto arrows: from each outcome (and a stage's "next") to the element it names.
   * A jump forward runs above the canvas to the target's top; a loop back runs
   * below it (dashed orange) to the target's bottom, so rework loops stand out. */
  function drawArrows(scope) {
    var svg = scope.querySelector(".bb-arrows");
    var canvas = scope.querySelector(".bb-canvas");
    if (!svg || !canvas) return;
    var ns = "http://www.w3.org/2000/svg";
    var base = svg.parentElement.getBoundingClientRect();
    var left = svg.parentElement.scrollLeft;
    svg.setAttribute("width", canvas.scrollWidth);
    svg.setAttribute("height", canvas.scrollHeight + 60);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var marker = document.createElementNS(ns, "defs");
    marker.innerHTML = '<marker id="bb-head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"></path></marker>';
    svg.appendChild(marker);
    var bottom = canvas.getBoundingClientRect().bottom - base.top + 30;
    scope.querySelectorAll("[data-goto]").forEach(function (from) {
      var name = from.dataset.goto;
      var target = name && canvas.querySelector('.bb-canvas > li[data-name="' + CSS.escape(name) + '"]');
      if (!target) return;
      var a = from.getBoundingClientRect();
      var b = target.getBoundingClientRect();
      var loop = from.classList.contains("bb-loop");
      var x1 = a.right - base.left + left, y1 = a.top + a.height / 2 - base.top;
      var d;
      if (loop) {
        var x2 = b.left + b.width / 2 - base.left + left, y2 = b.bottom - base.top;
        x1 = a.left - base.left + left; y1 = a.top + a.height / 2 - base.top;
        d = "M" + x1 + "," + y1 + " C" + (x1 - 30) + "," + bottom + " " + x2 + "," + bottom + " " + x2 + "," + (y2 + 4);
      } else {
        var tx = b.left - base.left + left, ty = b.top + 24 - base.top;
        d = "M" + x1 + "," + y1 + " C" + (x1 + 40) + "," + y1 + " " + (tx - 40) + "," + ty + " " + (tx - 2) + "," + ty;
      }
      var path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      path.setAttribute("marker-end", "url(#bb-head)");
      path.setAttribute("class", (loop ? "bb-arrow-loop" : "") + (from.classList.contains("bb-taken") ? " bb-arrow-taken" : ""));
      svg.appendChild(path);
    });
  }

  /* A path wider than its frame: fade the cut edge and show a "more" button on that side. */
  function markOverflow() {
    var frame = document.getElementById("bb-canvas-frame");
    var box = document.getElementById("bb-canvas-scroll");
    if (!frame || !box) return;
    var left = box.scrollLeft > 2;
    var right = box.scrollLeft + box.clientWidth < box.scrollWidth - 2;
    frame.classList.toggle("bb-cut-left", left);
    frame.classList.toggle("bb-cut-right", right);
    document.getElementById("bb-more-left").hidden = !left;
    document.getElementById("bb-more-right").hidden = !right;
  }

  window.addEventListener("resize", function () {
    var ws = document.getElementById("bb-workspace");
    if (ws) drawArrows(ws);
    markOverflow();
  });

  document.addEventListener("scroll", function (evt) {
    if (evt.target && evt.target.id === "bb-canvas-scroll") markOverflow();
  }, true);

  function init(scope) {
    initSortable(scope);
    drawArrows(scope);
    scope.querySelectorAll(".bb-panel-form").forEach(applyKinds);
    var selected = scope.querySelector(".bb-selected");
    if (selected && selected.scrollIntoView) selected.scrollIntoView({block: "nearest", inline: "nearest"});
    markOverflow();
  }

  /* Stacked (narrow screen): the panel a card opens is below the path, so bring it into view. */
  function showPanelIfStacked(from) {
    var side = document.querySelector(".bb-side");
    var frame = document.getElementById("bb-canvas-frame");
    var panel = document.querySelector(".bb-panel");
    if (!from || !from.classList || !from.classList.contains("bb-card-open") || !side || !frame || !panel) return;
    if (side.getBoundingClientRect().top >= frame.getBoundingClientRect().bottom) panel.scrollIntoView({block: "start"});
  }

  /* YAML typed and not applied is kept by the server (in the session) so that going to the
   * canvas and back shows it again: sent 400 ms after typing stops and when the box loses focus. */
  function keepYaml(box) {
    clearTimeout(timers.get(box));
    if (!document.body.contains(box) || box.dataset.sent === box.value) return;
    var form = box.closest("form");
    box.dataset.sent = box.value;
    htmx.ajax("POST", form.dataset.keepUrl, {source: box, swap: "none", values: {keep: "1", yaml: box.value}});
  }

  document.addEventListener("submit", function (evt) {
    var box = evt.target.querySelector && evt.target.querySelector("textarea.bb-yaml");
    if (box) { clearTimeout(timers.get(box)); box.dataset.sent = box.value; }
  }, true);

  document.addEventListener("input", function (evt) {
    var box = evt.target;
    if (!box.closest || !box.closest("#bb-workspace")) return;
    if (box.classList.contains("bb-yaml") && box.closest("[data-keep-url]")) {
      later(box, keepYaml);
      return;
    }
    if (box.classList.contains("bb-expr") || whatOf(box)) {
      lastExpression = box;
      later(box, checkExpression);
    }
    if (box.getAttribute("list") && box.getAttribute("list").indexOf("bb-assignees-") === 0) {
      later(box, searchAssignees);
    }
  });

  document.addEventListener("focusin", function (evt) {
    if (evt.target.classList && evt.target.classList.contains("bb-expr")) lastExpression = evt.target;
  });

  document.addEventListener("change", function (evt) {
    var el = evt.target;
    if (el.classList && el.classList.contains("bb-yaml") && el.closest("[data-keep-url]")) {
      keepYaml(el);
      return;
    }
    var form = el.closest && el.closest(".bb-panel-form");
    if (!form || !form.dataset.refreshUrl) return;
    var name = el.name || "";
    if (/(^|-)(type|flow|entry_flow|exit_flow|child_orchestration|condition_flow)$/.test(name) && el.tagName === "SELECT") {
      refreshPanel(form);
      return;
    }
    applyKinds(form);
  });

  document.addEventListener("click", function (evt) {
    var tool = evt.target.closest && evt.target.closest(".bb-step-tools button[data-op]");
    if (tool && !tool.disabled) {
      var values = {op: tool.dataset.op, step: tool.closest(".bb-step").dataset.pk};
      if (tool.dataset.direction) values.direction = tool.dataset.direction;
      post(values);
      return;
    }
    var insert = evt.target.closest && evt.target.closest(".bb-insert");
    if (insert) {
      var box = lastExpression && document.body.contains(lastExpression) ? lastExpression
        : document.querySelector(".bb-panel-form .bb-expr");
      if (!box) return;
      var start = box.selectionStart || box.value.length;
      var end = box.selectionEnd || start;
      box.value = box.value.slice(0, start) + insert.dataset.insert + box.value.slice(end);
      box.focus();
      box.selectionStart = box.selectionEnd = start + insert.dataset.insert.length;
      later(box, checkExpression);
      return;
    }
    var more = evt.target.closest && evt.target.closest(".bb-more");
    if (more) {
      var path = document.getElementById("bb-canvas-scroll");
      var by = Math.round(path.clientWidth * 0.8) * (more.classList.contains("bb-more-left") ? -1 : 1);
      path.scrollBy({left: by, behavior: "smooth"});
      return;
    }
    var jump = evt.target.closest && evt.target.closest(".bb-jump");
    if (jump) {
      var target = document.getElementById("el-" + jump.dataset.key);
      if (target) target.scrollIntoView({block: "nearest", inline: "center"});
    }
  });

  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.target && evt.target.id === "bb-workspace") {
      init(evt.target);
      showPanelIfStacked(evt.detail.requestConfig && evt.detail.requestConfig.elt);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var ws = document.getElementById("bb-workspace");
    if (ws) init(ws);
  });
}());
