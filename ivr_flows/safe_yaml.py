"""YAML reading with bounds: the one way config.yaml and IVR flows are read.

`yaml.safe_load` already refuses arbitrary Python objects, but not a document that is
small on disk and huge once its aliases are followed ("billion laughs"), nor one whose
alias points into itself (a recursive list that every later walk of the data loops on).
This loader refuses both while the document is composed, before any Python object is
built, and bounds the file size and the nesting depth. Every refusal is a
`yaml.MarkedYAMLError` with the line and column, like any other YAML syntax error, so the
callers' existing "file: line L, column C: problem" reporting covers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

# config.yaml is ~10 KB and a flow a few KB: these bounds leave room for large contact
# centers (hundreds of queues) while keeping a hostile file cheap to refuse.
MAX_BYTES: Final = 1024 * 1024
# Values in the document once every alias is followed (the shipped config has ~600).
MAX_VALUES: Final = 100_000
# Nesting of mappings and lists (the shipped files go 5 deep).
MAX_DEPTH: Final = 64


class YamlTooLarge(Exception):
    """The file is larger than the bound."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses recursive aliases, alias bombs and very deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open_anchors: set[str] = set()
        # Expanded size of every composed node, by identity: an alias adds the size of the
        # node it names, so the total is known without expanding anything.
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Compose one node, refusing it when it is recursive, too deep or too big."""
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise ComposerError(
                    None,
                    None,
                    f"alias *{event.anchor} refers to a value that contains it "
                    "(recursive structures are not allowed)",
                    mark,
                )
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(
                None, None, f"values nested more than {MAX_DEPTH} levels deep", mark
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        assert node is not None  # only None at the end of the stream, never mid-document
        self._sizes[id(node)] = size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_VALUES:
            raise ComposerError(
                None,
                None,
                f"more than {MAX_VALUES} values once aliases are expanded "
                "(too many or too deeply repeated *aliases)",
                node.start_mark,
            )
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """Build one value; a value Python refuses (a 13th month) is a marked YAML error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(
                None, None, f"cannot read {_shown(node)}: {exc}", node.start_mark
            ) from None


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _shown(node: Node) -> str:
    value = node.value if isinstance(node.value, str) else ""
    return repr(value[:40] + ("..." if len(value) > 40 else "")) if value else "the value"


def loads(text: str) -> Any:
    """Parse one YAML document within the bounds; yaml.YAMLError (with a mark) otherwise."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_text(path: Path, max_bytes: int = MAX_BYTES) -> str:
    """The file's UTF-8 text; YamlTooLarge past `max_bytes` (OSError, UnicodeDecodeError)."""
    with path.open("rb") as stream:
        # Read one byte past the bound rather than trusting stat(): /dev/zero, a FIFO.
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlTooLarge(f"larger than {max_bytes // 1024} KiB")
    return data.decode("utf-8")


def describe(exc: yaml.YAMLError) -> tuple[str, str]:
    """(" line L, column C" or "", the problem) of a YAML error, for one-line messages."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return where, problem
