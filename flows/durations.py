"""Durations as definitions write them: ``30s``, ``10m``, ``2h``, ``3d`` or ISO 8601 ``PT30S``."""
import datetime
import re

_SHORT = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_ISO = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text):
    """A ``timedelta`` from ``text``; ValueError with a readable message otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return datetime.timedelta(seconds=text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a duration (write 30s, 10m, 2h, 3d or PT30S)")
    m = _SHORT.match(text)
    if m:
        return datetime.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    m = _ISO.match(text.strip().upper())
    if m and any(m.groupdict().values()):
        parts = {k: float(v) for k, v in m.groupdict().items() if v}
        return datetime.timedelta(**parts)
    raise ValueError(f"{text!r} is not a duration (write 30s, 10m, 2h, 3d or PT30S)")
