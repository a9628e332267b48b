"""Benchmark (6): throughput (1) with many runs parked on open work items.

Stores 100,000 runs (``--quick``: 10,000), each waiting in a stage on an
interactive step with an open work item, by SQL, then measures Baton's
distributed throughput exactly as ``bench/throughput.py`` does. ``run.py``
divides it by the throughput of (1) on an empty database in the same run.
"""
import time

from bench import common, throughput


def main():
    parked = 10_000 if common.QUICK else 100_000
    runs = 50 if common.QUICK else 200
    common.setup_django()
    started = time.perf_counter()
    throughput.park(parked)
    fill = time.perf_counter() - started
    common.report(parked=parked, park_seconds=fill, baton=throughput.baton(runs))


if __name__ == "__main__":
    main()
