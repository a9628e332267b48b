"""Benchmark (6): throughput (1) with many runs parked on open work items.

Measures Baton's distributed throughput exactly as ``bench/throughput.py``
does on the empty database, then stores 100,000 runs (``--quick``: 10,000),
each waiting in a stage on an interactive step with an open work item, by
SQL (then ``VACUUM ANALYZE``), and measures again. The ratio is taken within
this one process: a figure of (1) from another process differs by up to
20 % on this shared machine, more than what is measured here.
"""
import time

from bench import common, throughput


def main():
    parked = 10_000 if common.QUICK else 100_000
    runs = 50 if common.QUICK else 200
    common.setup_django()
    empty = throughput.baton(runs)
    started = time.perf_counter()
    throughput.park(parked)
    fill = time.perf_counter() - started
    common.report(parked=parked, park_seconds=fill, empty=empty, baton=throughput.baton(runs))


if __name__ == "__main__":
    main()
