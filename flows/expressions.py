"""Expressions: CEL, checked against limits, cached by source text, evaluated over plain maps.

Every place a definition computes something goes through here. Nothing is
ever ``eval``-ed or rendered as a Django template. The CEL itself is the
compiled ``common-expression-language`` binding (module ``cel``), called
only by ``cel_worker.answer``: in a child process (``flows/cel_worker.py``,
one per concurrent evaluation, kept and reused) or, for expressions that
cannot run long, in this one. Measured (docs/design.md): the binding keeps
the interpreter lock for a whole evaluation, has no iteration budget and no
bound on what it builds, and a deep expression crashes its process. So:

* before anything reaches the binding, an expression's length, parse-tree
  depth and node count are checked here (``expression_shape``), at
  activation and import as well as before each evaluation;
* the child's memory is capped, this process waits for its answer without
  holding the interpreter lock and stops it after a deadline, and a result
  with a text or lists too large is refused in the child;
* only an expression whose cost is bounded by its shape runs in this
  process, through the same function (``cel_worker.answer``): no loop
  (``map``, ``filter``, ``all``, ``exists``, ``exists_one``), at most
  ``INLINE_DEPTH`` levels, and small inputs (``INLINE_BUDGET``). Without a
  loop, CEL's work and what it builds grow at most with the square of the
  node count times the size of what it reads, so these finish in
  microseconds and spare the round trip;
* whatever goes wrong (a binding panic, a crash, a timeout) comes back as
  an ``ExpressionError`` naming the place.

The limits are settings, read in ``limits()``.

Text with merge fields uses ``{!expr}``: ``"Hello {!record.name}"``.
"""
import datetime
import decimal
import functools
import io
import math
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed

from . import cel_worker
from .conf import FLOW_SETTINGS, baton_settings

MERGE_FIELD = re.compile(r"\{!(.*?)\}", re.S)


class ExpressionError(Exception):
    """An expression that does not compile, is over a limit, or fails when evaluated.

    ``place`` names where it sits (``onboarding › prepare › it_setup ›
    inputs.employee``) so the message can be shown as it is.
    """

    def __init__(self, message, place="", expression="", missing_key=False):
        self.place = place
        self.expression = expression
        self.detail = message
        self.missing_key = missing_key
        text = f"{place}: {message}" if place else message
        super().__init__(text)


# ---------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------

# The settings behind ``Limits``, in its fields' order; defaults and docs in flows/conf.py.
LIMIT_SETTINGS = (
    "BATON_CEL_MAX_LENGTH",
    "BATON_CEL_MAX_DEPTH",
    "BATON_CEL_MAX_NODES",
    "BATON_CEL_MAX_STRING",
    "BATON_CEL_MAX_ITEMS",
    "BATON_CEL_MAX_SECONDS",
    "BATON_CEL_MAX_MEMORY_MB",
    "BATON_FLOW_MAX_ELEMENTS",
)


@dataclass(frozen=True)
class Limits:
    max_length: int
    max_depth: int
    max_nodes: int
    max_string: int
    max_items: int
    max_seconds: float
    max_memory_mb: int
    flow_max_elements: int


_limits_in_force = []  # the Limits read last; emptied when a setting changes (tests)


def limits():
    """The expression limits in force: each setting if given, else its default."""
    if _limits_in_force:
        return _limits_in_force[0]
    if settings.configured:
        values = [getattr(baton_settings, name) for name in LIMIT_SETTINGS]
    else:  # a script without Django settings (bench/cel_compare.py)
        values = [FLOW_SETTINGS[name].default for name in LIMIT_SETTINGS]
    current = Limits(*values)
    if settings.configured:
        _limits_in_force[:] = [current]
    return current


def _forget_limits(setting, **kwargs):
    if setting in LIMIT_SETTINGS:
        _limits_in_force.clear()


def _listen_for_setting_changes():
    setting_changed.connect(_forget_limits, dispatch_uid="flows.expressions.limits")


_listen_for_setting_changes()


# ---------------------------------------------------------------------------
# Shape: length, depth and nodes, measured without the binding
# ---------------------------------------------------------------------------

TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR])(?:"{3}[\s\S]*?"{3}|'{3}[\s\S]*?'{3}|"[^"\n]*"|'[^'\n]*')
      | [bB]?(?:"{3}(?:\\[\s\S]|[^\\])*?"{3}|'{3}(?:\\[\s\S]|[^\\])*?'{3}|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d+|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%!<>?:.,()\[\]{}])
    """,
    re.X,
)
LITERAL_NAMES = {"true", "false", "null"}
LOOP_MACROS = {"map", "filter", "all", "exists", "exists_one"}
# Calls whose cost is not bounded by the expression's size: the macros iterate,
# and a regular expression may backtrack for as long as its input allows
# (``matches("(?:.{0,100}){0,100}b")`` over 60,000 characters ran 14 s in
# process, holding the interpreter lock). These go to the bounded evaluator.
UNBOUNDED_CALLS = LOOP_MACROS | {"matches"}
# Every function and method the CEL binding knows (it is used without its extension library). The
# binding compiles a call of any name and fails only when the call runs, so a misspelt or borrowed
# function (``join``, ``lowerAscii``, ``max``) would pass activation and fail in a live run; the check
# refuses it up front. tests/flows/test_expressions.py evaluates every name here with the binding.
CEL_FUNCTIONS = frozenset({
    "size", "int", "uint", "double", "string", "bytes", "type", "dyn", "duration", "timestamp",
    "matches", "contains", "startsWith", "endsWith", "has", *LOOP_MACROS,
    "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    "of", "none", "ofNonZeroValue", "hasValue", "value", "or", "orValue",  # optional values
})
RELATIONS = {"==", "!=", "<", "<=", ">", ">=", "in"}
OPENERS = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class Shape:
    """What the check found: the parse tree's depth and node count, and the names read at the top."""

    depth: int
    nodes: int
    names: frozenset
    loops: bool  # calls something whose cost its size does not bound (UNBOUNDED_CALLS)
    calls: frozenset = frozenset()  # the functions and methods it calls, by name


class _TooLarge(Exception):
    pass


class _ShapeParser:
    """Just enough of CEL's grammar to measure the parse tree the binding would build.

    Each operator, call, member access, index, literal and name is a node one
    level below its parent; a run of ``&&`` or ``||`` counts as a balanced
    tree (as CEL parsers build it, so the 32 terms in a row the CEL spec asks
    every implementation to accept stay within the default depth). Recursion
    only follows brackets, whose nesting is checked first, so a long
    expression never runs this process out of stack. A syntax error is left
    for the binding to describe; what was parsed up to it still counts.
    """

    def __init__(self, tokens, max_nodes):
        self.tokens = tokens
        self.at = 0
        self.nodes = 0
        self.max_nodes = max_nodes
        self.names = set()
        self.calls = set()

    def peek(self):
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self):
        token = self.peek()
        self.at += 1
        return token

    def node(self):
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise _TooLarge

    def expr(self):
        depths = [self.logical("||", self.conjunction)]
        while self.peek()[1] == "?":
            self.take()
            self.node()
            depths.append(self.logical("||", self.conjunction))
            if self.peek()[1] == ":":
                self.take()
            depths.append(self.logical("||", self.conjunction))
        # a ? b : c ? d : e nests to the right
        depth = depths[-1]
        for i in range(len(depths) - 3, -1, -2):
            depth = 1 + max(depths[i], depths[i + 1], depth)
        return depth

    def logical(self, op, operand):
        depths = [operand()]
        while self.peek()[1] == op:
            self.take()
            self.node()
            depths.append(operand())
        return max(depths) + math.ceil(math.log2(len(depths)))

    def conjunction(self):
        return self.logical("&&", self.relation)

    def chain(self, ops, operand):
        depth = operand()
        while self.peek()[1] in ops:
            self.take()
            self.node()
            depth = 1 + max(depth, operand())
        return depth

    def relation(self):
        return self.chain(RELATIONS, self.addition)

    def addition(self):
        return self.chain({"+", "-"}, self.multiplication)

    def multiplication(self):
        return self.chain({"*", "/", "%"}, self.unary)

    def unary(self):
        prefix = 0
        while self.peek()[1] in ("!", "-"):
            self.take()
            self.node()
            prefix += 1
        return prefix + self.member()

    def member(self):
        depth = self.primary()
        while True:
            op = self.peek()[1]
            if op == ".":
                self.take()
                self.node()
                name = self.take()[1]  # the field or method name
                if self.peek()[1] == "(":
                    self.calls.add(name)
                    depth = 1 + max(depth, self.arguments(")"))
                else:
                    depth += 1
            elif op == "[":
                self.node()
                depth = 1 + max(depth, self.arguments("]"))
            else:
                return depth

    def arguments(self, closer):
        """From an opening bracket to its ``closer``: expressions separated by commas (or colons, in maps)."""
        self.take()
        depth = 0
        while self.peek()[0] != "end" and self.peek()[1] != closer:
            depth = max(depth, self.expr())
            if self.peek()[1] in (",", ":"):
                self.take()
            elif self.peek()[1] != closer:
                break  # a syntax error: the binding names it
        if self.peek()[1] == closer:
            self.take()
        return depth

    def primary(self):
        kind, text = self.peek()
        self.node()
        if text == "(":
            return self.arguments(")")
        if text in ("[", "{"):
            return 1 + self.arguments(OPENERS[text])
        if text == ".":  # a leading dot: .name
            self.take()
            kind, text = self.peek()
        self.take()
        if kind == "name" and text not in LITERAL_NAMES:
            if self.peek()[1] == "(":
                self.calls.add(text)
                return 1 + self.arguments(")")
            if self.peek()[1] == "{":  # a message literal: Name{field: value}
                return 1 + self.arguments("}")
            self.names.add(text)
        return 1


def tokens(source):
    """CEL's tokens of ``source``. A character CEL does not have is a token of its own: the binding names it."""
    tokens, at = [], 0
    while at < len(source):
        match = TOKEN.match(source, at)
        if match is None:
            tokens.append(("other", source[at]))
            at += 1
            continue
        if match.lastgroup != "space":
            text = match.group()
            tokens.append(("op" if text == "in" else match.lastgroup, text))
        at = match.end()
    return tokens


@functools.lru_cache(maxsize=4096)
def _measure(source, max_length, max_depth, max_nodes):
    """``(Shape, "")``, or ``(None, why it is refused)``."""
    if len(source) > max_length:
        return None, (f"it is {len(source):,} characters long; the limit is {max_length:,} "
                      "(setting BATON_CEL_MAX_LENGTH)")
    found = tokens(source)
    nesting = deepest = 0
    for kind, text in found:
        if text in OPENERS:
            nesting += 1
            deepest = max(deepest, nesting)
        elif text in (")", "]", "}"):
            nesting -= 1
    if deepest > max_depth:
        return None, (f"its brackets nest {deepest} deep; the limit is {max_depth} levels "
                      "(setting BATON_CEL_MAX_DEPTH)")
    parser = _ShapeParser(found, max_nodes)
    try:
        depth = parser.expr()
    except _TooLarge:
        return None, (f"it has more than {max_nodes:,} parts (names, literals, operators); "
                      f"the limit is {max_nodes:,} (setting BATON_CEL_MAX_NODES)")
    except RecursionError:
        return None, f"it nests too deeply to check; the limit is {max_depth} levels (setting BATON_CEL_MAX_DEPTH)"
    if depth > max_depth:
        return None, (f"it nests {depth} levels deep; the limit is {max_depth} "
                      "(setting BATON_CEL_MAX_DEPTH)")
    loops = any(kind == "name" and text in UNBOUNDED_CALLS for kind, text in found)
    return Shape(depth, parser.nodes, frozenset(parser.names), loops, frozenset(parser.calls)), ""


def expression_shape(source, place="", current=None):
    """The ``Shape`` of ``source``, or ExpressionError naming ``place`` when it is over a limit."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("empty expression", place, source or "")
    current = current or limits()
    shape, refused = _measure(source, current.max_length, current.max_depth, current.max_nodes)
    if shape is None:
        shown = source if len(source) <= 80 else source[:60] + "…"
        raise ExpressionError(f"{shown!r} is refused: {refused}", place, source)
    return shape


# ---------------------------------------------------------------------------
# The evaluator processes
# ---------------------------------------------------------------------------

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cel_worker.py")
FRAME_HEADER = struct.Struct(">I")
START_SECONDS = 60.0  # a cold start on a busy machine; evaluations have their own deadline
IDLE_EVALUATORS = 8  # kept per process for reuse; more may run at once


class _EvaluatorLost(Exception):
    """The evaluator did not answer: it was stopped after the deadline, or it died."""


class _ReplyUnpickler(pickle.Unpickler):
    """Results hold plain values and dates; nothing else may be built from a reply."""

    ALLOWED = {("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"), ("datetime", "timedelta"),
               ("datetime", "timezone"), ("zoneinfo", "ZoneInfo")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a CEL value")


class _Evaluator:
    """One child process running ``cel_worker.py``; used by one thread at a time."""

    def __init__(self, memory_mb):
        self.memory_mb = memory_mb
        self.process = subprocess.Popen(
            [sys.executable, WORKER_SCRIPT, str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, close_fds=True,
        )
        self.poller = select.poll()
        self.poller.register(self.process.stdout.fileno(), select.POLLIN)
        try:
            self.read_frame(time.monotonic() + START_SECONDS)  # ("ready", pid)
        except _EvaluatorLost:
            self.stop()
            raise

    def alive(self):
        return self.process.poll() is None

    def ask(self, request, seconds):
        view = memoryview(FRAME_HEADER.pack(len(request)) + request)
        try:
            while view:
                view = view[os.write(self.process.stdin.fileno(), view):]
        except OSError:
            raise _EvaluatorLost(self.death()) from None
        return self.read_frame(time.monotonic() + seconds)

    def read_frame(self, deadline):
        size = FRAME_HEADER.unpack(self.read(FRAME_HEADER.size, deadline))[0]
        return _ReplyUnpickler(io.BytesIO(self.read(size, deadline))).load()

    def read(self, size, deadline):
        chunks, got = [], 0
        fd = self.process.stdout.fileno()
        while got < size:
            remaining = deadline - time.monotonic()
            # poll() waits without the interpreter lock: other threads run meanwhile.
            if remaining <= 0 or not self.poller.poll(remaining * 1000):
                raise _EvaluatorLost("timeout")
            chunk = os.read(fd, min(size - got, 1 << 20))
            if not chunk:
                raise _EvaluatorLost(self.death())
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def death(self):
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            try:
                return f"died of {signal.Signals(-code).name}"
            except ValueError:
                return f"died of signal {-code}"
        return f"exited with status {code}"

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class _Pool:
    """Idle evaluators of this process. A thread takes one (or starts one) and gives it back."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle = []

    def take(self, memory_mb):
        stale = []
        with self.lock:
            while self.idle:
                evaluator = self.idle.pop()
                if evaluator.memory_mb == memory_mb and evaluator.alive():
                    break
                stale.append(evaluator)
            else:
                evaluator = None
        for old in stale:
            old.stop()
        return evaluator or _Evaluator(memory_mb)

    def give_back(self, evaluator):
        with self.lock:
            if len(self.idle) < IDLE_EVALUATORS:
                self.idle.append(evaluator)
                return
        evaluator.stop()


_pool = _Pool()


def _new_pool_after_fork():
    # The evaluators belong to the parent (a Celery or gunicorn master) and
    # its lock may be held by a thread that does not exist here: the child
    # starts its own, leaving the parent's pipes alone.
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_new_pool_after_fork)


def _ask(op, source, scope, place, current):
    """One request to an evaluator: its reply ``(kind, value)``, or ExpressionError naming ``place``."""
    try:
        request = pickle.dumps((op, source, scope, current.max_string, current.max_items),
                               protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ExpressionError(f"{source!r} failed: a value it reads cannot be evaluated ({exc})",
                              place, source) from None
    try:
        evaluator = _pool.take(current.max_memory_mb)
    except (OSError, _EvaluatorLost) as exc:
        raise ExpressionError(f"{source!r} failed: the CEL evaluator could not start ({exc})",
                              place, source) from None
    try:
        reply = evaluator.ask(request, current.max_seconds)
    except _EvaluatorLost as exc:
        evaluator.stop()
        if str(exc) == "timeout":
            why = f"it ran longer than {current.max_seconds:g} s and was stopped (setting BATON_CEL_MAX_SECONDS)"
        else:
            why = (f"the evaluator {exc}: the expression needed more than {current.max_memory_mb} MB "
                   "(setting BATON_CEL_MAX_MEMORY_MB) or crashed the CEL library")
        raise ExpressionError(f"{source!r} failed: {why}", place, source) from None
    except Exception as exc:  # a reply that does not unpickle: the rest of that stream is not trusted
        evaluator.stop()
        raise ExpressionError(f"{source!r} failed: its result cannot be read ({exc})", place, source) from None
    except BaseException:  # interrupted while waiting (a task's time limit): its reply may still come
        evaluator.stop()
        raise
    _pool.give_back(evaluator)
    return reply


# In this process: at most this deep (the binding recurses once per level;
# it was measured to handle 10,000), and at most this much work, counted as
# nodes² × (characters and values read + 1).
INLINE_DEPTH = 32
INLINE_BUDGET = 1_000_000
_inline_programs = {}


def _inline(request):
    # The compiled binding is loaded only by a process that evaluates inline (or by the
    # evaluator process): the web and worker processes that never do are spared loading it.
    import cel

    return cel_worker.answer(cel, _inline_programs, request)


@functools.lru_cache(maxsize=4096)
def _compile_problem(source, inline):
    """What the binding says about ``source`` (``""``: it compiles); cached, as compiling is pure."""
    current = limits()
    if inline:
        kind, message = _inline(("compile", source, {}, current.max_string, current.max_items))
    else:
        kind, message = _ask("compile", source, {}, "", current)
    return message if kind == "compile" else ""


def compile_expression(source, place=""):
    """Check ``source`` against the limits and compile it, or raise ExpressionError naming ``place``.

    Returns its ``Shape``. Activation and import checks call this.
    """
    shape = expression_shape(source, place)
    unknown = sorted(shape.calls - CEL_FUNCTIONS)
    if unknown:
        raise ExpressionError(
            f"{source!r} calls {', '.join(f'{name}()' for name in unknown)}, which CEL here does not have "
            f"(functions: {', '.join(sorted(CEL_FUNCTIONS))})", place, source)
    try:
        problem = _compile_problem(source, shape.depth <= INLINE_DEPTH)
    except ExpressionError as exc:  # the evaluator failed (could not start, timed out): say where
        raise ExpressionError(exc.detail, place, source) from None
    if problem:
        raise ExpressionError(f"{source!r} does not compile: {problem}", place, source)
    return shape


PLAIN_TYPES = (str, int, float, bool, type(None), bytes, datetime.datetime, datetime.timedelta)


def _plain(value):
    """``value`` built of the types the evaluator knows (subclasses such as Django's safe text become their base)."""
    kind = type(value)
    if kind in PLAIN_TYPES:
        return value
    if kind is dict or isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if kind is list or isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    for base in PLAIN_TYPES[:-2]:
        if isinstance(value, base):
            return base(value)
    if isinstance(value, datetime.datetime):
        return datetime.datetime.fromisoformat(value.isoformat())
    if isinstance(value, datetime.timedelta):
        return datetime.timedelta(seconds=value.total_seconds())
    raise TypeError(f"a {kind.__name__} value cannot be read by an expression")


def _input_size(values, cap):
    """Characters and values in ``values`` (a dict), counted up to just past ``cap``."""
    pending, size = list(values.values()), 0
    while pending and size <= cap:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is bytes:
            size += len(item)
        elif kind is dict or isinstance(item, dict):
            size += len(item) + 1
            pending.extend(item.values())
        elif kind is list or isinstance(item, (list, tuple)):
            size += len(item) + 1
            pending.extend(item)
        elif isinstance(item, (str, bytes)):
            size += len(item)
        else:
            size += 1
    return size


def evaluate(source, scope, place=""):
    """The value of ``source`` over ``scope``; ExpressionError naming ``place`` on any failure.

    The one call into CEL: whatever the binding does (an error, a panic, a
    crash, running out of time or memory) ends here as an ExpressionError.
    """
    current = limits()
    shape = expression_shape(source, place, current)
    names = {name: scope[name] for name in shape.names if name in scope}  # only what it reads
    budget = INLINE_BUDGET // (shape.nodes * shape.nodes or 1)
    if not shape.loops and shape.depth <= INLINE_DEPTH and _input_size(names, budget) < budget:
        kind, value = _inline(("eval", source, names, current.max_string, current.max_items))
    else:
        try:
            names = {name: _plain(value) for name, value in names.items()}
        except TypeError as exc:
            raise ExpressionError(f"{source!r} failed: {exc}", place, source) from None
        kind, value = _ask("eval", source, names, place, current)
    if kind == "ok":
        return from_cel(value)
    if kind == "compile":
        raise ExpressionError(f"{source!r} does not compile: {value}", place, source)
    raise ExpressionError(f"{source!r} failed: {value}", place, source, missing_key=kind == "missing")


def evaluate_condition(source, scope, place=""):
    """A condition: must give a boolean. A missing key (a step not done yet) counts as false."""
    try:
        value = evaluate(source, scope, place)
    except ExpressionError as exc:
        if exc.missing_key:
            return False
        raise
    if not isinstance(value, bool):
        raise ExpressionError(f"{source!r} gave {type(value).__name__} {value!r}, not true or false", place, source)
    return value


def merge_fields(text):
    """The expressions inside ``{!...}`` merge fields of ``text``."""
    return [m.group(1).strip() for m in MERGE_FIELD.finditer(text or "")]


def render_merge(text, scope, place=""):
    """Replace each ``{!expr}`` with its value as text. The caller escapes for HTML."""

    # Each field's value is bounded by BATON_CEL_MAX_STRING; the whole text
    # is too, or a thousand fields would each repeat one large input.
    limit = limits().max_string
    size = 0

    def replace(match):
        nonlocal size
        value = evaluate(match.group(1).strip(), scope, place)
        shown = "" if value is None else display_text(value)
        size += len(shown)
        if size > limit:
            raise ExpressionError(f"the merged text would be longer than {limit:,} characters "
                                  "(setting BATON_CEL_MAX_STRING)", place)
        return shown

    return MERGE_FIELD.sub(replace, text or "")


def display_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(display_text(v) for v in value)
    return str(value)


def to_cel(value):
    """Convert a Python value into something the CEL bindings accept."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_cel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_cel(v) for v in value]
    if isinstance(value, datetime.timedelta):
        return value
    return str(value)


def from_cel(value):
    """Results back to plain Python (JSON-friendly where possible)."""
    if isinstance(value, dict):
        return {k: from_cel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_cel(v) for v in value]
    return value


class UnstorableValue(ValueError):
    """A value a JSON column cannot hold, or a page cannot show; ``path`` names where it sits."""

    def __init__(self, reason, path=""):
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)

    def inside(self, step):
        return UnstorableValue(self.reason, f"{step}{'' if self.path.startswith('[') or not self.path else '.'}{self.path}")


LONE_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_FINITE = "a number that is not finite (inf or nan) cannot be stored"
NOT_UNICODE = "text with a lone surrogate (such as \\ud800) is not valid Unicode and cannot be stored"


def shown_name(name):
    """``name`` safe to quote in a message: lone surrogates as ``\\udXXX`` escapes."""
    return str(name).encode("utf-8", "backslashreplace").decode("utf-8")


def check_unicode(value):
    """Raise ``UnstorableValue`` naming where ``value`` (parsed JSON) holds a lone surrogate.

    For request bodies: inf and nan are left to the checks of each field,
    whose messages say what was expected there.
    """
    if isinstance(value, str):
        if LONE_SURROGATE.search(value):
            raise UnstorableValue(NOT_UNICODE)
    elif isinstance(value, dict):
        for key, item in value.items():
            if LONE_SURROGATE.search(str(key)):
                raise UnstorableValue(f"the name: {NOT_UNICODE}", shown_name(key))
            try:
                check_unicode(item)
            except UnstorableValue as exc:
                raise exc.inside(key) from None
    elif isinstance(value, list):
        for index, item in enumerate(value):
            try:
                check_unicode(item)
            except UnstorableValue as exc:
                raise exc.inside(f"[{index}]") from None


def to_json(value):
    """A value ready to store in a JSONField (datetimes as ISO text).

    Raises ``UnstorableValue`` (a ValueError) for inf or nan, which JSON
    columns refuse, and for text with a lone surrogate, which is stored but
    then cannot be encoded as UTF-8 by any page that shows it.
    """
    if isinstance(value, str):
        if LONE_SURROGATE.search(value):
            raise UnstorableValue(NOT_UNICODE)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnstorableValue(NOT_FINITE)
        return value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return to_json(float(value))
    if isinstance(value, dict):
        stored = {}
        for key, item in value.items():
            key = str(key)
            if LONE_SURROGATE.search(key):
                raise UnstorableValue(f"the name: {NOT_UNICODE}", shown_name(key))
            try:
                stored[key] = to_json(item)
            except UnstorableValue as exc:
                raise exc.inside(key) from None
        return stored
    if isinstance(value, (list, tuple, set)):
        stored = []
        for index, item in enumerate(value):
            try:
                stored.append(to_json(item))
            except UnstorableValue as exc:
                raise exc.inside(f"[{index}]") from None
        return stored
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
