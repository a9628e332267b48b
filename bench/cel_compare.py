"""Compare CEL evaluators on correctness and speed.

    python bench/cel_compare.py            # cel-python is optional

``common-expression-language`` (module ``cel``, compiled bindings) is the
CEL Baton uses; Baton calls it through ``flows.expressions.evaluate``, which
checks the expression's limits and evaluates in a bounded child process
(``flows/cel_worker.py``). ``cel-python`` (module ``celpy``, pure Python) is
the alternative. Prints one line per expression with µs per evaluation: the
binding called directly in this process, Baton's bounded ``evaluate``, and
celpy; and whether all agree.
"""
import datetime
import statistics
import time

CASES = [
    ('record.email.endsWith("@acc.example")', {"record": {"email": "ann@acc.example"}}, True),
    ("record.amount > 1000.0 && record.stage == 'approval'", {"record": {"amount": 5000.0, "stage": "approval"}}, True),
    ("size(inputs.items) >= 2", {"inputs": {"items": [1, 2, 3]}}, True),
    ('steps.review.outputs.decision == "rework"', {"steps": {"review": {"outputs": {"decision": "rework"}}}}, True),
    ('"user:" + record.owner', {"record": {"owner": "bob"}}, "user:bob"),
    ("has(record.manager) ? record.manager : 0", {"record": {"manager": 7}}, 7),
    ("1 + 2 * 3", {}, 7),
    # A loop: Baton evaluates it in its bounded child process (a round trip).
    ("inputs.items.exists(i, i > 2)", {"inputs": {"items": [1, 2, 3]}}, True),
]


def time_it(fn, n=2000):
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def main():
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cel
    from django.conf import settings

    if not settings.configured:
        settings.configure()  # the limits' defaults, as in a project that sets none
    from flows.expressions import evaluate

    try:
        import celpy
    except ImportError:
        celpy = None
    print(f"{'expression':58} {'cel µs':>8} {'baton µs':>9} {'celpy µs':>9}  agree")
    for source, context, expected in CASES:
        program = cel.compile(source)
        got = program.execute(context)
        cel_us = time_it(lambda: program.execute(context))
        bounded = evaluate(source, context)
        baton_us = time_it(lambda: evaluate(source, context), n=500)
        answers = {"cel": got, "baton": bounded}
        celpy_us = float("nan")
        if celpy is not None:
            env = celpy.Environment()
            prog = env.program(env.compile(source))
            activation = {k: celpy.json_to_cel(v) for k, v in context.items()}
            answers["celpy"] = prog.evaluate(activation)
            celpy_us = time_it(lambda: prog.evaluate(activation), n=200)
        wrong = {name: value for name, value in answers.items() if value != expected}
        agree = "yes" if not wrong else f"no {wrong!r}"
        print(f"{source[:58]:58} {cel_us:8.1f} {baton_us:9.1f} {celpy_us:9.1f}  {agree}")
    print(f"machine: {datetime.date.today()} {__import__('platform').processor() or __import__('platform').machine()}")


if __name__ == "__main__":
    main()
