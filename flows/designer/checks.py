"""The validator's problems, pinned to the part of the flow they are about.

The validator (``flows.validation``) names a place as text, e.g.
``intake › screen first › field colour › choices``; ``target_of`` finds the
designer's selection key for it (``s0f1``), and ``path_of`` the path into
the definition mapping (``["flows", 0, "screens", 0, "fields", 1]``) whose
YAML line the YAML view shows.
"""
import re
from dataclasses import dataclass

from flows.validation import SEP

LINE_SUFFIX = re.compile(r" \(line \d+\)$")


@dataclass(frozen=True)
class Check:
    place: str
    message: str
    target: str  # the designer's selection key of the part, "flow" when it is the flow itself
    line: int | None = None

    def __str__(self):
        where = f"{self.place} (line {self.line})" if self.line else self.place
        return f"{where}: {self.message}" if where else self.message


def _find(items, name):
    for index, item in enumerate(items or []):
        if isinstance(item, dict) and item.get("name") == name:
            return index
    return None


def locate(data, place):
    """``(selection key, path)`` of the deepest part of ``data`` that ``place`` names."""
    parts = LINE_SUFFIX.sub("", place or "").split(SEP)
    target, path = "flow", ["flows", 0]
    screen = None
    for part in parts[1:]:
        if part.startswith("screen "):
            s = _find(data.get("screens"), part[len("screen "):])
            if s is None:
                break
            screen, target, path = s, f"s{s}", ["flows", 0, "screens", s]
        elif part.startswith("field "):
            name = part[len("field "):]
            screens = data.get("screens") or []
            order = [screen] if screen is not None else range(len(screens))
            for s in order:
                f = _find(screens[s].get("fields"), name)
                if f is not None:
                    target, path = f"s{s}f{f}", ["flows", 0, "screens", s, "fields", f]
                    break
            break
        else:
            found = re.match(r"(inputs|outputs)\.(\w+)", part)
            if found:
                key, name = found.groups()
                i = _find(data.get(key), name)
                if i is not None:
                    target, path = f"{'in' if key == 'inputs' else 'out'}{i}", ["flows", 0, key, i]
                break
            found = re.match(r"elements\[(\d+)\]", part)
            if found:
                i = int(found.group(1))
                if i < len(data.get("elements") or []):
                    target, path = f"e{i}", ["flows", 0, "elements", i]
                break
    return target, path


def pin(data, problems, document=None):
    """``Check`` per problem, with its target and, given the YAML ``document`` it came from, its line."""
    from orchestration.definition_files import line_of

    out = []
    for problem in problems:
        target, path = locate(data, problem.place)
        line = line_of(document, path) if document is not None else None
        out.append(Check(LINE_SUFFIX.sub("", problem.place), problem.message, target, line))
    return out


def targets(checks):
    """How many problems each selection key (and each screen, counting its fields) has."""
    counts = {}
    for check in checks:
        counts[check.target] = counts.get(check.target, 0) + 1
        screen = re.match(r"(s\d+)f\d+$", check.target)
        if screen:
            counts[screen.group(1) + "*"] = counts.get(screen.group(1) + "*", 0) + 1
    return counts
