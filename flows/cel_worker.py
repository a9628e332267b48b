"""The one function that calls the CEL binding (``answer``), and the child process that runs it.

``flows.expressions`` calls ``answer`` in its own process only for
expressions whose cost their shape bounds (no loop, shallow, small inputs);
everything else it sends here.

Started as ``python cel_worker.py MEMORY_MB`` by ``flows.expressions``, it
answers requests on its standard input and output until that input closes
(its parent is gone). Why a separate process: the compiled binding keeps the
interpreter lock for the whole of an evaluation (eight nested ``.map()``
would freeze every thread of a web server), has no iteration budget and no
bound on the strings and lists it builds, and crashes its process on deep
expressions or when memory runs out. Here it can only take itself down:
its address space is capped (``RLIMIT_AS``), the parent gives up on it
after a deadline and starts another, and a result too large to pass back is
refused before it is sent.

Frames are a 4-byte big-endian length and a pickle. Request:
``(op, source, scope, max_string, max_items)`` with op ``"compile"`` or
``"eval"``; reply: ``("ok", value)`` or ``(kind, message)`` where kind is
``"compile"`` (does not compile), ``"missing"`` (a missing map key: a
condition counts it as false) or ``"error"``.
"""
import os
import pickle
import resource
import struct
import sys

HEADER = struct.Struct(">I")
MAX_PROGRAMS = 4096  # compiled programs kept, by source text


def read_exact(stream, size):
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def first_line(exc):
    text = str(exc)
    if isinstance(exc, KeyError):
        return f"no such key {text}"
    # The parser's message carries a caret diagram after the first line.
    return text.splitlines()[0] if text.strip() else exc.__class__.__name__


def oversize(value, max_string, max_items):
    """Why ``value`` is too large to hand back, or ``""``; walks without recursion."""
    pending, items = [value], 0
    while pending:
        item = pending.pop()
        if isinstance(item, (str, bytes)):
            if len(item) > max_string:
                return (f"it built a text of {len(item):,} characters; the limit is {max_string:,} "
                        "(setting BATON_CEL_MAX_STRING)")
        elif isinstance(item, (list, tuple, dict)):
            items += len(item)
            if items > max_items:
                return (f"it built lists or maps holding more than {max_items:,} values "
                        "(setting BATON_CEL_MAX_ITEMS)")
            pending.extend(item.items() if isinstance(item, dict) else item)
    return ""


def answer(cel, programs, request):
    op, source, scope, max_string, max_items = request
    program = programs.get(source)
    if program is None:
        try:
            program = cel.compile(source)
        except BaseException as exc:  # the binding's panics are BaseException
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                raise
            return ("compile", first_line(exc))
        if len(programs) >= MAX_PROGRAMS:
            programs.clear()
        programs[source] = program
    if op == "compile":
        return ("ok", None)
    try:
        value = program.execute(scope)
    except KeyError as exc:
        return ("missing", first_line(exc))
    except MemoryError:
        return ("error", "it ran out of memory (setting BATON_CEL_MAX_MEMORY_MB)")
    except BaseException as exc:  # ValueError, TypeError, RuntimeError, and PanicException
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            raise
        return ("error", first_line(exc))
    too_large = oversize(value, max_string, max_items)
    if too_large:
        return ("error", too_large)
    return ("ok", value)


def main():
    memory_mb = int(sys.argv[1])
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies goes to the parent's pipe
    import cel

    if memory_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    programs = {}
    ready = pickle.dumps(("ready", os.getpid()))
    replies.write(HEADER.pack(len(ready)) + ready)
    replies.flush()
    while True:
        header = read_exact(requests, HEADER.size)
        if header is None:
            return
        body = read_exact(requests, HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            request = pickle.loads(body)
        except Exception as exc:  # the parent sends plain values; anything else is its bug, not a crash here
            reply = ("error", f"the values it reads cannot be passed to the evaluator ({exc})")
        else:
            reply = answer(cel, programs, request)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            data = pickle.dumps(("error", "it ran out of memory (setting BATON_CEL_MAX_MEMORY_MB)"))
        except Exception as exc:
            data = pickle.dumps(("error", f"its result cannot be passed back: {type(exc).__name__}"))
        replies.write(HEADER.pack(len(data)) + data)
        replies.flush()


if __name__ == "__main__":
    sys.path[:1] = []  # this file's folder holds app modules, not libraries
    main()
