"""The path of an orchestration version drawn as SVG, on the server.

``diagram_layout(plan, state=None)`` places every element of a ``Plan`` on a
grid: one column per path element (stages with their steps stacked below the
stage's header; decisions as a diamond with one box per outcome), a start
dot on the left and an ``End`` column on the right. Transitions become edges:

* to the next column: a straight arrow between the headers;
* forward past other columns (a decision outcome, a stage's ``next``): an
  arc above the columns, the shortest nearest them, so that nested arcs do not
  cross; an arc that starts inside another and ends past it goes below the
  columns instead (the two would cross above) and comes up into its target
  like a loop;
* backward (a rework loop): an arc below the columns, marked ``loop``.

Inside a stage, an ``after`` dependency is a small arrow on the left side of
the column from the step waited for to the step waiting, and the waiting
step says ``after X`` in its second line.

Titles and second lines wrap to two lines (a box grows to hold them) and are
cut with "…" only past that. The SVG is drawn at full size up to the width it
is given and never scaled below ``MIN_SCALE``: a wider path scrolls.

``render_diagram(plan, state=None)`` returns the SVG (a template renders the
layout; every text goes through Django's escaping). ``run_state(run)`` reads
where a run stands (three queries) in the shape ``state`` expects: each
element and step is ``done``, ``current``, ``error``, ``skipped`` or
``upcoming``, and each decision that was taken names its outcome.

Nothing here needs JavaScript or an outside service.
"""
from dataclasses import dataclass, field

from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from .models import END, RunStatus, StageStatus, StepStatus

COL_W = 220
COL_GAP = 76
END_W = 64
MARGIN = 18
HEADER_H = 52
STEP_H = 48
STEP_GAP = 12
LANE = 18
CHAR_W = 7.2  # average width of a bold 12px sans-serif character, for truncating
SMALL_W = 5.9  # the same for the 10px second lines
TITLE_LINE = 14  # line height of a 12px title
SMALL_LINE = 12  # line height of a 10px second line
MIN_SCALE = 0.9  # below this the 10px second lines are too small to read: scroll instead

STATES = ("done", "current", "error", "skipped", "upcoming")


BADGE_CHAR_W = 6.6  # an upper-case 9px bold character with the badge's letter spacing


def _badge_room(state):
    """Width the state badge ("DONE", "CURRENT"...) takes at the top right of a box: the title must stop before it."""
    return len(state) * BADGE_CHAR_W + 10 if state and state != "upcoming" else 0


def _fit(text, width, char_w=CHAR_W):
    text = str(text or "")
    room = max(int(width / char_w), 4)
    return text if len(text) <= room else text[: room - 1] + "…"


def _wrap(text, width, char_w=CHAR_W, lines=2):
    """``text`` in at most ``lines`` lines of ``width``: broken at spaces, else after ". _ - / :",
    else anywhere; the last line cut with "…" when the text goes on."""
    rest = " ".join(str(text or "").split())
    room = max(int(width / char_w), 4)
    out = []
    while rest:
        if len(rest) <= room:
            out.append(rest)
            break
        if len(out) == lines - 1:
            out.append(rest[: room - 1] + "…")
            break
        cut = rest.rfind(" ", 0, room + 1)
        if cut > 0:
            out.append(rest[:cut])
            rest = rest[cut + 1:]
            continue
        cut = max(rest.rfind(mark, 0, room) for mark in "._-/:,") + 1
        cut = cut if cut > 0 else room
        out.append(rest[:cut])
        rest = rest[cut:]
    return out or [""]


def _rows(top, first, lines, line_h):
    """``[(y, text)]``: the baselines of ``lines`` from ``top + first``."""
    return [(top + first + k * line_h, line) for k, line in enumerate(lines)]


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float
    title: str
    subtitle: str = ""
    full: str = ""
    state: str = ""
    name: str = ""
    title_rows: list = field(default_factory=list)  # [(baseline y, line)] when the title wraps
    subtitle_rows: list = field(default_factory=list)

    @property
    def cx(self):
        return self.x + self.w / 2

    @property
    def cy(self):
        return self.y + self.h / 2

    @property
    def right(self):
        return self.x + self.w

    @property
    def bottom(self):
        return self.y + self.h


@dataclass
class StepBox(Box):
    kind: str = "background"  # interactive | background | orchestration | wait
    after: tuple = ()


@dataclass
class OutcomeBox(Box):
    decision: str = ""
    goto: str = ""
    taken: bool = False
    is_default: bool = False


@dataclass
class Column:
    index: int
    name: str
    label: str
    kind: str  # stage | decision | end
    x: float
    header: Box
    steps: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    after_arrows: list = field(default_factory=list)
    state: str = ""
    visits: int = 0
    panel_h: float = 0

    @property
    def diamond(self):
        """Points of a decision's diamond (inside the header box)."""
        h = self.header
        return (f"{h.cx},{h.y} {h.right},{h.cy} {h.cx},{h.bottom} {h.x},{h.cy}")


@dataclass
class Edge:
    source: str
    target: str
    label: str
    kind: str  # next | skip | loop
    path: str
    label_x: float
    label_y: float
    taken: bool = False

    @property
    def is_loop(self):
        return self.kind == "loop"


@dataclass
class Layout:
    width: float
    height: float
    columns: list
    edges: list
    start_x: float
    start_y: float
    start_path: str
    api_name: str
    version: int
    with_state: bool

    @property
    def min_width(self):
        """The narrowest the SVG may be drawn: ``MIN_SCALE`` of its size (and never under 720 px)."""
        return min(self.width, max(720, round(self.width * MIN_SCALE)))


def _instances_badge(step):
    """``×N`` for a multi-instance step (N when its list is a literal, else ``×*``); "" otherwise."""
    if not step.is_multi_instance:
        return ""
    import json

    try:
        size = len(json.loads((step.for_each or step.assignees).replace("'", '"')))
    except (ValueError, TypeError):
        size = None
    return f"×{size}" if size is not None else "×*"


def _step_subtitle(step):
    parts = [f"runs {step.child_orchestration}" if step.is_child_orchestration else step.type]
    if step.is_multi_instance:
        completion = step.completion if isinstance(step.completion, str) else " ".join(
            f"{k} {v}" for k, v in step.completion.items())
        parts.append(f"{_instances_badge(step)} {'in turn' if step.sequential else 'in parallel'}, {completion}")
    if step.is_interactive:
        if step.assignee_type == "expr":
            parts.append("assignee by expression")
        elif step.assignee:
            parts.append(f"{step.assignee_type}:{step.assignee}")
        if step.due_in:
            parts.append(f"due {step.due_in}")
    if step.is_wait:  # drawn as an hourglass box
        if step.wait_event:
            parts.append(f"event {step.wait_event}" + (f", timeout {step.wait_timeout}" if step.wait_timeout else ""))
        elif step.wait_for:
            parts.append(f"for {step.wait_for}")
        elif step.wait_until:
            parts.append(f"until {step.wait_until}")
    if step.entry == "after" and step.after:
        parts.append("after " + ", ".join(step.after))
    elif step.entry_condition:
        parts.append("when " + (step.entry_condition.expression or f"flow {step.entry_condition.flow}"))
    return " · ".join(parts)


def _condition_text(condition):
    if condition is None:
        return ""
    return condition.expression or f"flow {condition.flow}"


def diagram_layout(plan, state=None):
    """Place columns, boxes and edges of ``plan``; ``state`` (see ``run_state``) colours them."""
    state = state or {}
    element_states = state.get("elements", {})
    step_states = state.get("steps", {})
    taken = state.get("outcomes", {})
    visits = state.get("visits", {})
    with_state = bool(state)

    elements = list(plan.elements)
    index = {e.name: i for i, e in enumerate(elements)}
    end_index = len(elements)

    # The transitions, as (source index, target index, label, taken).
    transitions = []
    for i, element in enumerate(elements):
        if element.is_decision:
            by_target = {}
            for outcome in element.outcomes:
                by_target.setdefault(outcome.goto or END, []).append(outcome.name)
            by_target.setdefault(element.default_goto or END, []).append("default")
            for target, names in by_target.items():
                chosen = taken.get(element.name) in names
                transitions.append((i, index.get(target, end_index), " / ".join(names), chosen))
        else:
            target = plan.following(element)
            chosen = element_states.get(element.name) == "done" and with_state
            transitions.append((i, index.get(target, end_index), "", chosen))
            if element.on_error_goto:
                # The stage's error path: taken when the stage ended in error and the run went on.
                chosen = element_states.get(element.name) == "error" and element_states.get(
                    element.on_error_goto, "upcoming") != "upcoming"
                transitions.append((i, index.get(element.on_error_goto, end_index), "⚠ on error", chosen))

    forward_skips = [t for t in transitions if t[1] > t[0] + 1]
    loops = [t for t in transitions if t[1] <= t[0]]
    # An arc that starts inside another and ends past it would cross it above the columns: it goes
    # round underneath instead, coming up into its target like a loop.
    under = [t for t in forward_skips if any(u[0] < t[0] < u[1] < t[1] for u in forward_skips)]
    over = sorted((t for t in forward_skips if t not in under), key=lambda t: (t[1] - t[0], t[0]))

    top = MARGIN + 14 + LANE * len(over)
    left = MARGIN + 44  # room for the start dot

    # Stage titles wrap to two lines; every header gets the height of the tallest so arrows run level.
    title_lines = {}
    for element in elements:
        if not element.is_decision:
            badge = _badge_room(element_states.get(element.name, "upcoming" if with_state else ""))
            title_lines[element.name] = _wrap(element.label, COL_W - 24 - badge)
    header_h = HEADER_H + TITLE_LINE * (max((len(v) for v in title_lines.values()), default=1) - 1)

    # Columns and their boxes.
    columns = []
    tallest = header_h
    for i, element in enumerate(elements):
        x = left + i * (COL_W + COL_GAP)
        el_state = element_states.get(element.name, "upcoming" if with_state else "")
        if element.is_decision:
            header = Box(x + 20, top, COL_W - 40, header_h, _fit(element.label, COL_W - 80), "decision",
                         full=f"{element.label} ({element.name})", state=el_state, name=element.name)
        else:
            exit_text = _condition_text(element.exit_condition)
            subtitle = element.name + (f" · exit when {exit_text}" if exit_text else "")
            if visits.get(element.name, 0) > 1:
                subtitle = f"{subtitle} · visit {visits[element.name]}"
            lines = title_lines[element.name]
            header = Box(x, top, COL_W, header_h, " ".join(lines), _fit(subtitle, COL_W - 22, SMALL_W),
                         full=f"{element.label} ({element.name})" + (f"; exit when {exit_text}" if exit_text else ""),
                         state=el_state, name=element.name, title_rows=_rows(top, 20, lines, TITLE_LINE))
            header.subtitle_rows = [(header.title_rows[-1][0] + 17, header.subtitle)]
        column = Column(i, element.name, element.label, element.kind, x, header, state=el_state,
                        visits=visits.get(element.name, 0))
        y = top + header_h + 18
        if element.is_decision:
            outcomes = [(o.name, o.goto or END, _condition_text(o.condition), False) for o in element.outcomes]
            outcomes.append(("default", element.default_goto or END, "when no outcome holds", True))
            for name, goto, condition, is_default in outcomes:
                titles, seconds = _wrap(f"{name} → {goto}", COL_W - 36), _wrap(condition, COL_W - 36, SMALL_W)
                title_rows = _rows(y, 19, titles, TITLE_LINE)
                subtitle_rows = _rows(title_rows[-1][0], 17, seconds, SMALL_LINE)
                box = OutcomeBox(
                    x + 8, y, COL_W - 16, max(STEP_H, subtitle_rows[-1][0] + 12 - y), " ".join(titles),
                    " ".join(seconds), full=f"{name}: {condition} → {goto}", name=name, decision=element.name,
                    goto=goto, taken=taken.get(element.name) == name, is_default=is_default,
                    title_rows=title_rows, subtitle_rows=subtitle_rows,
                )
                column.outcomes.append(box)
                y += box.h + STEP_GAP
        else:
            boxes = {}
            for step in element.steps:
                step_state = step_states.get(step.name, "upcoming" if with_state else "")
                titles = _wrap(f"{step.label} {_instances_badge(step)}".strip(),
                               COL_W - 22 - 38 - _badge_room(step_state))
                seconds = _wrap(_step_subtitle(step), COL_W - 22 - 18, SMALL_W)
                title_rows = _rows(y, 20, titles, TITLE_LINE)
                subtitle_rows = _rows(title_rows[-1][0], 18, seconds, SMALL_LINE)
                box = StepBox(
                    x + 14, y, COL_W - 22, max(STEP_H, subtitle_rows[-1][0] + 10 - y), " ".join(titles),
                    " ".join(seconds),
                    full=f"{step.label} ({step.name}): {_step_subtitle(step)}"
                         + (f"; flow {step.flow}" if step.flow else ""),
                    state=step_state, name=step.name, kind=step.type, after=tuple(step.after),
                    title_rows=title_rows, subtitle_rows=subtitle_rows,
                )
                boxes[step.name] = box
                column.steps.append(box)
                y += box.h + STEP_GAP
            for k, step in enumerate(element.steps):
                for dep in step.after if step.entry == "after" else ():
                    if dep in boxes:
                        a, b = boxes[dep], boxes[step.name]
                        bend = a.x - 6 - 3 * (k % 3)
                        column.after_arrows.append({
                            "path": f"M{a.x},{a.cy} C{bend},{a.cy} {bend},{b.cy} {b.x - 1},{b.cy}",
                            "source": dep, "target": step.name,
                        })
        tallest = max(tallest, y - top, header_h)
        columns.append(column)

    end_x = left + end_index * (COL_W + COL_GAP)
    end_header = Box(end_x, top, END_W, header_h, "End", name=END,
                     state=element_states.get(END, "upcoming" if with_state else ""))
    columns.append(Column(end_index, END, "End", "end", end_x, end_header, state=end_header.state))

    panel_bottom = top + tallest + 4
    for column in columns:
        column.panel_h = tallest + 4
    bottom = panel_bottom + 22 + LANE * (len(loops) + len(under))

    # Edges. The arcs above are laid out shortest first, each on the next lane out; arcs leaving
    # one column start further left, and arcs reaching one column end further right, the longer
    # they are, so that no arc's upright crosses another's lane.
    edges = []
    out_slot, in_slot = {}, {}
    skip_lane = loop_lane = 0
    ordered = ([t for t in transitions if t not in over and t not in under] + over + under)
    for source, target, label, chosen in ordered:
        src, dst = columns[source], columns[target]
        s_name, t_name = src.name, dst.name
        if target == source + 1:
            y = src.header.cy
            x1, x2 = src.header.right, dst.header.x
            if src.kind == "decision":
                x1 = src.header.right
            edges.append(Edge(s_name, t_name, label, "next", f"M{x1},{y} H{x2 - 2}", x1 + 6, y - 6, chosen))
        elif target > source and (source, target, label, chosen) in under:
            loop_lane += 1
            lane_y = panel_bottom + 14 + LANE * (loop_lane - 1)
            x1 = src.x + COL_W * 0.5
            if dst.kind == "end":
                x2, end_y = dst.header.cx, dst.header.cy + 24  # the circle's bottom
            elif dst.steps or dst.outcomes:  # up the column's right edge, clear of its boxes
                x2, end_y = dst.x + COL_W - 4 + 6 * (loop_lane - 1), dst.header.bottom + 2
            else:
                x2, end_y = dst.header.cx, dst.header.bottom + 2
            path = f"M{x1},{panel_bottom} V{lane_y} H{x2} V{end_y}"
            edges.append(Edge(s_name, t_name, label, "skip", path, x1 + 6, lane_y - 4, chosen))
        elif target > source:
            skip_lane += 1
            lane_y = top - 8 - LANE * (skip_lane - 1) - 6
            k_out = out_slot.get(source, 0)
            out_slot[source] = k_out + 1
            k_in = in_slot.get(target, 0)
            in_slot[target] = k_in + 1
            x1 = src.header.x + src.header.w * 0.62 - 12 * k_out
            x2 = dst.header.x + min(dst.header.w * 0.38, 26) + 8 * k_in
            if dst.kind == "end":
                x2 = dst.header.cx - 8 + 8 * k_in
            path = f"M{x1},{src.header.y} V{lane_y} H{x2} V{dst.header.y - 2}"
            edges.append(Edge(s_name, t_name, label, "skip", path, x1 + 6, lane_y - 4, chosen))
        else:
            loop_lane += 1
            lane_y = panel_bottom + 14 + LANE * (loop_lane - 1)
            x1 = src.x + COL_W * 0.5
            x2 = dst.x + COL_W * 0.5 + 8 * (loop_lane - 1)
            path = f"M{x1},{panel_bottom} V{lane_y} H{x2} V{dst.header.bottom + 2}"
            if dst.steps or dst.outcomes:
                # Come up on the column's right edge, clear of its boxes.
                x2 = dst.x + COL_W - 4 + 6 * (loop_lane - 1)
                path = f"M{x1},{panel_bottom} V{lane_y} H{x2} V{dst.header.bottom + 2}"
            edges.append(Edge(s_name, t_name, (label + " " if label else "") + "↺ loop back", "loop", path,
                              min(x1, x2) + 10, lane_y - 4, chosen))

    start_y = top + header_h / 2
    first = columns[0].header
    layout = Layout(
        width=end_x + END_W + MARGIN,
        height=bottom + MARGIN,
        columns=columns,
        edges=edges,
        start_x=MARGIN + 8,
        start_y=start_y,
        start_path=f"M{MARGIN + 16},{start_y} H{first.x - 2}",
        api_name=plan.api_name,
        version=plan.version,
        with_state=with_state,
    )
    return layout


def render_diagram(plan, state=None, *, dom_id="baton-diagram"):
    """The SVG of ``plan``, coloured with ``state`` when given."""
    layout = diagram_layout(plan, state)
    return mark_safe(render_to_string("orchestration/diagram.svg", {"layout": layout, "dom_id": dom_id}))


def run_state(run):
    """Where ``run`` stands, for ``diagram_layout``: three queries."""
    elements, steps, outcomes, visits = {}, {}, {}, {}
    for stage_run in run.stage_runs.order_by("id").only("stage_name", "status", "visit"):
        visits[stage_run.stage_name] = stage_run.visit
        elements[stage_run.stage_name] = {
            StageStatus.COMPLETED: "done",
            StageStatus.IN_PROGRESS: "current",
            StageStatus.ERROR: "error",
            StageStatus.DISCONTINUED: "skipped",
        }.get(stage_run.status, "upcoming")
    step_map = {
        StepStatus.COMPLETED: "done",
        StepStatus.QUEUED: "current",
        StepStatus.RUNNING: "current",
        StepStatus.IN_PROGRESS: "current",
        StepStatus.WAITING: "upcoming",
        StepStatus.ERROR: "error",
        StepStatus.DISCONTINUED: "skipped",
        StepStatus.CANCELED: "skipped",
    }
    for step_run in run.step_runs.order_by("id").only("step_name", "status"):
        steps[step_run.step_name] = step_map.get(step_run.status, "upcoming")
    for event in run.events.filter(kind="decision_taken").order_by("id").only("stage_name", "data"):
        outcomes[event.stage_name] = (event.data or {}).get("outcome", "")
        elements[event.stage_name] = "done"
    if run.status == RunStatus.COMPLETED:
        elements[END] = "done"
    return {"elements": elements, "steps": steps, "outcomes": outcomes, "visits": visits}
