"""Flow actions for the fault suite's workers (BATON_ACTION_MODULES=tests.fault_actions).

``fault_count`` appends one line per execution to a file, so a test can count
how many times a step's flow really ran, whatever the messages did.
"""
import os
import time
from pathlib import Path

import flows


@flows.action("fault_count")
def count(path, seconds=0.0):
    with open(path, "a") as handle:
        handle.write(f"{os.getpid()} {time.time():.3f}\n")
        handle.flush()
        os.fsync(handle.fileno())
    if seconds:
        time.sleep(float(seconds))
    return {"pid": os.getpid()}


@flows.action("fault_sleep_once")
def sleep_once(marker, seconds=30.0):
    """Sleep only the first time (a marker file records it), so a killed attempt re-runs quickly."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(float(seconds))
    return {"pid": os.getpid()}
