"""Compare the two CEL packages on correctness and speed.

    python bench/cel_compare.py            # needs both packages installed

``common-expression-language`` (module ``cel``, compiled bindings) is what
Baton uses; ``cel-python`` (module ``celpy``, pure Python) is the
alternative. Prints one line per expression with µs per evaluation for each,
and whether both agree.
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
    import cel

    try:
        import celpy
    except ImportError:
        celpy = None
    print(f"{'expression':58} {'cel µs':>8} {'celpy µs':>9}  agree")
    for source, context, expected in CASES:
        program = cel.compile(source)
        got = program.execute(context)
        cel_us = time_it(lambda: program.execute(context))
        celpy_us, agree = float("nan"), "n/a"
        if celpy is not None:
            env = celpy.Environment()
            prog = env.program(env.compile(source))
            activation = {k: celpy.json_to_cel(v) for k, v in context.items()}
            other = prog.evaluate(activation)
            celpy_us = time_it(lambda: prog.evaluate(activation), n=200)
            agree = "yes" if other == expected and got == expected else f"no ({got!r} / {other!r})"
        print(f"{source[:58]:58} {cel_us:8.1f} {celpy_us:9.1f}  {agree}")
    print(f"machine: {datetime.date.today()} {__import__('platform').processor() or __import__('platform').machine()}")


if __name__ == "__main__":
    main()
