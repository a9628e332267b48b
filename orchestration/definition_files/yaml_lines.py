"""YAML with line numbers: the safe loader definition files are read with, and the writer they are exported with.

``load_yaml(text)`` returns ``(data, problems)``: mappings and lists that
remember their lines (``LineDict``, ``LineList``), so that every problem can
name the line it is about (``line_of``, ``place_at``). The loader reads YAML
1.2 booleans, keeps dates as text, reports duplicate keys, and refuses
documents whose aliases or nesting would blow up (``DocumentRefused``).
``dump_yaml(data)`` writes the export format.
"""
import re
import reprlib

import yaml

from flows.validation import Problem

# Problems quote the value they are about, shortened: a value may be large
# (a long text, or a list made of aliases), and the message is printed whole.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 5, 5, 80, 80


def short_repr(value):
    return _SHORT.repr(value)


class LineDict(dict):
    """A mapping read from YAML that remembers its line and each key's line."""

    line = None
    key_lines = None


class LineList(list):
    """A sequence read from YAML that remembers its line and each item's line."""

    line = None
    item_lines = None


# A few hundred bytes of anchors and aliases can stand for billions of nodes
# (a "billion laughs"); nesting a few thousand levels deep overflows Python's
# stack. What aliases may repeat, and how deep a document may nest, is capped.
MAX_ALIAS_NODES = 10_000  # nodes repeated by aliases, over the whole document
MAX_ALIAS_CHARACTERS = 1_000_000  # text repeated by aliases, over the whole document
MAX_NESTING = 64  # mappings and lists inside each other


class DocumentRefused(yaml.MarkedYAMLError):
    """Valid YAML this loader will not expand (too many aliases, too deep)."""


class LineLoader(yaml.SafeLoader):
    """A safe loader that records lines, reports duplicate keys, and reads YAML 1.2 booleans.

    ``yes``/``no``/``on``/``off`` stay text (an outcome may be named ``yes``),
    and dates stay text (variables store them as ISO text anyway). Aliases and
    nesting are limited (``MAX_ALIAS_NODES``, ``MAX_ALIAS_CHARACTERS``,
    ``MAX_NESTING``) while the document is composed, before anything is built.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicate_keys = []
        self.depth = 0
        self.open_anchors = set()  # anchors of nodes still being composed
        self.alias_nodes = 0
        self.alias_characters = 0
        self.node_sizes = {}  # id(node) -> (nodes, characters) it stands for

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._count_alias(event)
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise DocumentRefused(problem=f"nested more than {MAX_NESTING} levels deep", problem_mark=event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.discard(anchor)

    def _count_alias(self, event):
        if event.anchor in self.open_anchors:
            raise DocumentRefused(problem=f"alias *{event.anchor} refers to a node that contains it",
                                  problem_mark=event.start_mark)
        node = self.anchors.get(event.anchor)
        if node is None:
            return  # the composer reports the undefined alias
        nodes, characters = self._size(node)
        self.alias_nodes += nodes
        self.alias_characters += characters
        if self.alias_nodes > MAX_ALIAS_NODES or self.alias_characters > MAX_ALIAS_CHARACTERS:
            raise DocumentRefused(
                problem=f"aliases repeat more than {MAX_ALIAS_NODES:,} nodes or {MAX_ALIAS_CHARACTERS:,} characters "
                        f"(alias *{event.anchor} here)",
                problem_mark=event.start_mark,
            )

    def _size(self, node):
        known = self.node_sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.ScalarNode):
            size = (1, len(node.value))
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            sizes = [self._size(child) for child in children]
            size = (1 + sum(n for n, _ in sizes), sum(c for _, c in sizes))
        self.node_sizes[id(node)] = size
        return size


_BOOL, _TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"
LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
LineLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _construct_map(loader, node):
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    data.update(loader.construct_mapping(node, deep=True))
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            line = key_node.start_mark.line + 1
            if key in data.key_lines:
                loader.duplicate_keys.append(Problem(
                    f"line {line}", f"key {short_repr(key)} appears twice in one mapping (first on line {data.key_lines[key]})"
                ))
            else:
                data.key_lines[key] = line
        except TypeError:  # an unhashable key; construct_mapping has already refused it
            pass


def _construct_seq(loader, node):
    data = LineList()
    data.line = node.start_mark.line + 1
    yield data
    data.extend(loader.construct_sequence(node, deep=True))
    data.item_lines = [item.start_mark.line + 1 for item in node.value]


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(text):
    """``(data, problems)``: the document read safely, or the YAML error with its line."""
    loader = LineLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the file"
        what = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"not valid YAML: {context + ', ' if context else ''}{what}"
        if isinstance(exc, DocumentRefused):
            message = f"refused: {what}"
        return None, [Problem(where, message)]
    finally:
        loader.dispose()
    return data, list(loader.duplicate_keys)


def line_of(data, path):
    """The line of the deepest node on ``path`` that has one (None if unknown)."""
    line = getattr(data, "line", None)
    node = data
    for key in path:
        if isinstance(node, dict):
            line = (node.key_lines or {}).get(key, line) if isinstance(node, LineDict) else line
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            if isinstance(node, LineList) and node.item_lines:
                line = node.item_lines[key]
            node = node[key]
        else:
            break
    return line


def path_text(path):
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(document)"


def place_at(data, path):
    line = line_of(data, path)
    text = path_text(path)
    return f"{text} (line {line})" if line else text


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(LineDict, yaml.SafeDumper.represent_dict)
_Dumper.add_representer(LineList, yaml.SafeDumper.represent_list)


def dump_yaml(data):
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
