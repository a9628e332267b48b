"""The names a CEL expression reads, for scope checks at activation.

The ``cel`` bindings we evaluate with expose no syntax tree: a compiled
program lists its variables, but mixes in the variables that macros bind
(``x`` in ``items.map(x, x.price)``) and says nothing of the fields read
from them. So this module walks the expression's tokens (the one tokenizer of
`flows.expressions`), only to
answer one question: which dotted paths of free names does it read?

``reads(source)`` returns one ``Read`` per occurrence of a free name, with
the path that follows it (``record.email`` → ``("record", "email")``;
``inputs["a b"]`` → ``("inputs", "a b")``) up to the first method call,
computed index or operator, and whether that path is the argument of
``has()``. String literals are skipped whole; macro variables are bound in
their own argument list; function names (``size(x)``) and method names
(``x.size()``) are not reads. An expression that does not tokenize gives no
reads: it does not compile either, and that is reported elsewhere.
"""
from dataclasses import dataclass

from flows.expressions import tokens

# Macros whose first argument(s) name a variable bound in the rest of the call.
BINDING_MACROS = {"all", "exists", "exists_one", "map", "filter", "transformList", "transformMap",
                  "transformMapEntry", "sortBy"}
KEYWORDS = {"true", "false", "null", "in"}
# Type names CEL knows as values (``type(x) == int``).
TYPE_NAMES = {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
              "google"}

@dataclass(frozen=True)
class Read:
    path: tuple  # ("record", "email")
    in_has: bool  # the path is exactly the argument of has()
    indexed: bool = False  # a computed index follows the path (``steps[inputs.n]``): its key is unknown

    @property
    def name(self):
        return self.path[0]

    @property
    def text(self):
        return ".".join(self.path)


def _tokens(source):
    """CEL's tokens (one tokenizer for the whole project: ``flows.expressions.tokens``), or None
    when a character CEL does not have makes the expression untokenizable."""
    found = tokens(source)
    if any(kind == "other" for kind, _ in found):
        return None
    return found


def _string_value(text):
    """The value of a plain string literal token (no escapes handled beyond the quotes), or None."""
    body = text.lstrip("rRbB")
    if text[:1] in "bB" or text[1:2] in "bB":
        return None
    for quote in ('"""', "'''", '"', "'"):
        if body.startswith(quote) and body.endswith(quote) and len(body) >= 2 * len(quote):
            inner = body[len(quote):-len(quote)]
            return inner if "\\" not in inner else None
    return None


def reads(source):
    """Every free name ``source`` reads, with its dotted path (see the module's doc)."""
    tokens = _tokens(source or "")
    if not tokens:
        return []
    out = []
    # A stack of (closing bracket, names bound inside). A macro's "(" binds its variable(s).
    frames = [(None, frozenset())]
    i, n = 0, len(tokens)

    def kind(k):
        return tokens[k][0] if 0 <= k < n else None

    def text(k):
        return tokens[k][1] if 0 <= k < n else None

    while i < n:
        k, t = tokens[i]
        if k == "op" and t in "([{":
            bound = frames[-1][1]
            if t == "(" and kind(i - 1) == "name" and text(i - 2) in (".", "?.") and text(i - 1) in BINDING_MACROS:
                names = []
                j = i + 1
                while kind(j) == "name" and text(j + 1) == "," and len(names) < 2:
                    names.append(text(j))
                    j += 2
                bound = bound | frozenset(names)
                frames.append((")", bound))
                # Skip the binders themselves: they are declarations, not reads.
                i += 1 + 2 * len(names)
                continue
            frames.append(({"(": ")", "[": "]", "{": "}"}[t], bound))
        elif k == "op" and t in ")]}":
            if len(frames) > 1:
                frames.pop()
        elif k == "name":
            after_dot = text(i - 1) in (".", "?.")
            is_call = text(i + 1) == "("
            if not after_dot and not is_call and t not in KEYWORDS and t not in frames[-1][1]:
                path = [t]
                j = i + 1
                while True:
                    if text(j) in (".", "?.") and kind(j + 1) == "name" and text(j + 2) != "(":
                        path.append(text(j + 1))
                        j += 2
                    elif (text(j) == "[" and kind(j + 1) == "string" and text(j + 2) == "]"
                          and _string_value(text(j + 1)) is not None):
                        path.append(_string_value(text(j + 1)))
                        j += 3
                    else:
                        break
                in_has = text(i - 1) == "(" and text(i - 2) == "has" and text(i - 3) not in (".", "?.") and text(j) == ")"
                out.append(Read(tuple(path), in_has, indexed=text(j) in ("[", "[?")))
                i = j
                continue
        i += 1
    return out


def free_names(source):
    """The set of free top-level names ``source`` reads."""
    return {read.name for read in reads(source)}



def assignment_order(assignments):
    """The names of an ``assign`` element's ``set`` in the order to evaluate them.

    An assignment that reads another variable set by the same element runs
    after it, so ``{"total": "amount * 2", "label": "string(total)"}`` gives
    ``label`` the new total whatever order the mapping comes back in
    (PostgreSQL's jsonb does not keep key order). Otherwise the given order is
    kept. Raises ``ValueError`` naming the variables when they read each other
    in a circle, which no order can satisfy.
    """
    names = list(assignments)
    waits_on = {name: (free_names(source) & set(names)) - {name} if isinstance(source, str) else set()
                for name, source in assignments.items()}
    order, done = [], set()
    while len(order) < len(names):
        ready = [name for name in names if name not in done and waits_on[name] <= done]
        if not ready:
            circle = sorted(name for name in names if name not in done)
            raise ValueError(f"{', '.join(circle)} read each other; no order of assignment satisfies them")
        order.append(ready[0])
        done.add(ready[0])
    return order
