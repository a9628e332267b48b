"""Flow actions used by tests that run real Celery workers (BATON_ACTION_MODULES=tests.worker_actions)."""
import os
import time
from pathlib import Path

import flows


@flows.action("test_slow_once")
def slow_once(marker, seconds=30.0):
    """Sleep the first time only (a marker file says it already started), so a killed attempt can be re-run fast."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(float(seconds))
    return {"pid": os.getpid()}


@flows.action("test_noop")
def noop():
    return {}
