"""Template filters of the monitor: durations in words an operator reads at a glance."""
from datetime import timedelta

from django import template

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
