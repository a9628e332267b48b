"""Template filters of the monitor: durations in words an operator reads at a glance, and stored
values (run inputs, event data) shown as JSON rather than Python's repr."""
import json
from datetime import timedelta

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def duration(value):
    """A timedelta (or seconds) as "3d 4h", "12m 5s", "40s"; "—" for nothing."""
    if value is None or value == "":
        return "—"
    if not isinstance(value, timedelta):
        try:
            value = timedelta(seconds=float(value))
        except (TypeError, ValueError):
            return "—"
    seconds = int(value.total_seconds())
    if seconds < 0:
        return "0s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


@register.simple_tag
def age(since, now):
    """How long ago ``since`` was, at ``now``."""
    if since is None or now is None:
        return "—"
    return duration(now - since)


@register.filter
def as_json(value):
    """A stored value as JSON (``true``, ``null``, double quotes), the way it was sent and the API shows it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def value_items(value):
    """``[(name, text)]`` of a dict, sorted by name, for a list of name: value: a text stays as it is,
    anything else is JSON. A value that is not a dict gives one row named "value"."""
    if not isinstance(value, dict):
        return [("value", as_json(value))]
    return [(str(name), item if isinstance(item, str) else as_json(item)) for name, item in sorted(value.items())]


@register.filter
def break_at_colons(value):
    """Escape ``value`` and let it wrap after each ":" (``group:<wbr>sales_managers``), not inside a name."""
    return mark_safe(conditional_escape(str(value)).replace(":", ":<wbr>"))
