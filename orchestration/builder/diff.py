"""Side-by-side comparison of two orchestration versions, in the definition file's terms.

Both versions are read as definition mappings (``orchestration.spec``), so
what is compared is what an export would show. Path elements are matched by
name, steps by name within their stage (a step moved to another stage shows
as removed there and added here), outcomes by name; every other key is
compared as a value. Each row says ``added``, ``removed``, ``changed`` or
``same``.
"""
from dataclasses import dataclass, field

from ..spec import orchestration_to_dict


@dataclass
class Row:
    what: str  # "start", "stage review", "step review › approve", ...
    status: str
    left: dict = field(default_factory=dict)
    right: dict = field(default_factory=dict)
    depth: int = 0

    @property
    def changed_keys(self):
        keys = list(dict.fromkeys([*self.left, *self.right]))
        return [k for k in keys if self.left.get(k) != self.right.get(k)]

    def pairs(self):
        """(key, left value, right value, differs) for the keys either side has."""
        keys = list(dict.fromkeys([*self.left, *self.right]))
        return [(k, _text(self.left.get(k)), _text(self.right.get(k)), self.left.get(k) != self.right.get(k))
                for k in keys]


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bool):  # as the YAML writes it, not Python's True/False
        return "true" if value else "false"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    return str(value)


def _status(left, right):
    if left is None:
        return "added"
    if right is None:
        return "removed"
    return "same" if left == right else "changed"


def _by_name(items):
    return {item.get("name"): item for item in items or []}


def _merged_names(left, right):
    return list(dict.fromkeys([*(i.get("name") for i in left or []), *(i.get("name") for i in right or [])]))


def compare(left_orch, right_orch):
    """Rows comparing ``left_orch`` with ``right_orch``, in path order."""
    left, right = orchestration_to_dict(left_orch), orchestration_to_dict(right_orch)
    rows = []
    top_keys = ("label", "description", "start", "inputs", "max_stage_visits")
    top_left = {k: left.get(k) for k in top_keys if k in left}
    top_right = {k: right.get(k) for k in top_keys if k in right}
    rows.append(Row("start and inputs", _status(top_left, top_right), top_left, top_right))
    left_path, right_path = _by_name(left.get("path")), _by_name(right.get("path"))
    left_order = [e.get("name") for e in left.get("path") or []]
    right_order = [e.get("name") for e in right.get("path") or []]
    for name in _merged_names(left.get("path"), right.get("path")):
        a, b = left_path.get(name), right_path.get(name)
        kind = (a or b).get("type", "stage")
        shallow = {k: v for k, v in (a or {}).items() if k not in ("steps", "outcomes")} if a else None
        shallow_b = {k: v for k, v in (b or {}).items() if k not in ("steps", "outcomes")} if b else None
        if a is not None and b is not None and left_order.index(name) != right_order.index(name):
            shallow = {**shallow, "position": left_order.index(name) + 1}
            shallow_b = {**shallow_b, "position": right_order.index(name) + 1}
        status = _status(shallow, shallow_b)
        children = []
        for child_key in ("steps", "outcomes"):
            la, lb = (a or {}).get(child_key), (b or {}).get(child_key)
            ma, mb = _by_name(la), _by_name(lb)
            for child in _merged_names(la, lb):
                ca, cb = ma.get(child), mb.get(child)
                if a is not None and b is not None and ca is not None and cb is not None:
                    ia = [i.get("name") for i in la].index(child)
                    ib = [i.get("name") for i in lb].index(child)
                    if ia != ib:
                        ca, cb = {**ca, "order": ia + 1}, {**cb, "order": ib + 1}
                what = "step" if child_key == "steps" else "outcome"
                children.append(Row(f"{what} {child}", _status(ca, cb), ca or {}, cb or {}, depth=1))
        if status == "same" and any(c.status != "same" for c in children):
            status = "changed"
        rows.append(Row(f"{kind} {name}", status, shallow or {}, shallow_b or {}))
        rows.extend(children)
    return rows


def summary(rows):
    counts = {}
    for row in rows:
        if row.status != "same":
            counts[row.status] = counts.get(row.status, 0) + 1
    return counts
