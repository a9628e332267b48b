"""Benchmark (6): throughput (1) with many runs parked on open work items.

Measures Baton's distributed throughput exactly as ``bench/throughput.py``
does on the empty database, then stores 100,000 runs (``--quick``: 10,000),
each waiting in a stage on an interactive step with an open work item, by
SQL (then ``VACUUM ANALYZE``), and measures again (in full mode twice each,
and the means are compared). The ratio is taken within
this one process: a figure of (1) from another process differs by up to
20 % on this shared machine, more than what is measured here.
"""
import time

from bench import common, throughput


def main():
    parked = 10_000 if common.QUICK else 100_000
    runs = 50 if common.QUICK else 200
    common.setup_django()
    repeats = 1 if common.QUICK else 2
    empty = [throughput.baton(runs) for _ in range(repeats)]
    started = time.perf_counter()
    throughput.park(parked)
    fill = time.perf_counter() - started
    full = [throughput.baton(runs) for _ in range(repeats)]
    common.report(parked=parked, park_seconds=fill, empty=_mean(empty), baton=_mean(full),
                  empty_each=[e["runs_per_s"] for e in empty], parked_each=[f["runs_per_s"] for f in full])


def _mean(measurements):
    first = dict(measurements[0])
    first["runs_per_s"] = sum(m["runs_per_s"] for m in measurements) / len(measurements)
    return first


if __name__ == "__main__":
    main()
