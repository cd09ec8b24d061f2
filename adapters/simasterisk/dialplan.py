"""extensions.conf, read the way Asterisk reads it (the subset our sample uses). Pure.

The simulator runs the dialplan we ship (contrib/asterisk/extensions_contact_center.conf)
rather than a copy of its logic, so a change to the sample changes what the simulator
does, as it would on a real Asterisk: `exten =>` / `same =>` lines, `n` priorities and
`n(label)`, `_X.` patterns, `[globals]`, `${VAR}`, `${GLOBAL(X)}`, `${CALLERID(...)}`,
`${EPOCH}`, `$["a" = "b"]` / `$[x - y < n]` expressions, and `#include` (the test bed's
extensions.conf includes the sample).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE = (
    Path(__file__).resolve().parents[2] / "contrib" / "asterisk" / "extensions_contact_center.conf"
)

_LINE = re.compile(r"^\s*(exten|same)\s*=>\s*(.*)$")
_APP = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\((.*)\))?\s*$")
_PRIORITY = re.compile(r"^(\d+|n)(?:\(([^)]*)\))?$")
_VAR = re.compile(r"\$\{([^${}]*)\}")
_EXPR = re.compile(r"\$\[([^\[\]]*)\]")


@dataclass(frozen=True, slots=True)
class Step:
    """One priority: `App(data)`, with its label if it has one."""

    priority: int
    label: str | None
    app: str
    data: str


@dataclass(slots=True)
class Extension:
    """An extension (or pattern) of a context and its priorities."""

    pattern: str
    steps: dict[int, Step] = field(default_factory=dict)

    def matches(self, exten: str) -> bool:
        """Asterisk pattern matching: `_` patterns with X Z N [..] . !, else literal."""
        if not self.pattern.startswith("_"):
            return self.pattern == exten
        return re.fullmatch(_pattern_regex(self.pattern[1:]), exten) is not None

    def label(self, name: str) -> int | None:
        """The priority carrying `name`."""
        for step in self.steps.values():
            if step.label == name:
                return step.priority
        return None


@dataclass(slots=True)
class Dialplan:
    """Contexts by name, each a list of extensions in file order, plus [globals]."""

    contexts: dict[str, list[Extension]] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    def find(self, context: str, exten: str) -> Extension | None:
        """The extension that takes `exten` in `context` (literal before pattern)."""
        candidates = self.contexts.get(context, [])
        for ext in candidates:
            if not ext.pattern.startswith("_") and ext.pattern == exten:
                return ext
        for ext in candidates:
            if ext.matches(exten):
                return ext
        return None

    def step(self, context: str, exten: str, priority: int) -> Step | None:
        """The step at a dialplan location, or None if there is none."""
        ext = self.find(context, exten)
        return None if ext is None else ext.steps.get(priority)


def _pattern_regex(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "[":
            end = body.index("]", i)
            out.append(body[i : end + 1])
            i = end + 1
            continue
        out.append(
            {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(
                ch.upper() if ch in "xzn" else ch, re.escape(ch)
            )
        )
        i += 1
    return "".join(out)


def parse(text: str, include: Callable[[str], str] | None = None) -> Dialplan:
    """Parse extensions.conf text (comments, contexts, globals, exten/same lines).

    include: the text of a `#include <name>` line's file (None: such lines are skipped).
    """
    plan = Dialplan()
    context: str | None = None
    current: Extension | None = None
    for raw in _lines(text, include, depth=0):
        line = raw.split(";", 1)[0].rstrip()
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            context = stripped[1:-1]
            current = None
            if context != "globals":
                plan.contexts.setdefault(context, [])
            continue
        if context == "globals":
            name, _, value = stripped.partition("=")
            plan.globals[name.strip()] = value.strip()
            continue
        match = _LINE.match(line)
        if match is None or context is None:
            continue
        kind, rest = match.groups()
        if kind == "exten":
            pattern, prio_text, app_text = _split3(rest)
            current = next(
                (e for e in plan.contexts[context] if e.pattern == pattern), None
            ) or Extension(pattern)
            if current not in plan.contexts[context]:
                plan.contexts[context].append(current)
        else:
            if current is None:
                continue
            prio_text, _, app_text = rest.partition(",")
        step = _step(current, prio_text.strip(), app_text)
        current.steps[step.priority] = step
    return plan


def load(path: Path = SAMPLE, *, search: tuple[Path, ...] = (SAMPLE.parent,)) -> Dialplan:
    """The dialplan in `path` (the shipped sample by default).

    `#include name` reads `name` from `path`'s folder, as Asterisk reads it from its
    configuration folder, else from the first folder of `search` that has it (by default
    the shipped sample's: contrib/asterisk/testbed/extensions.conf includes the sample,
    which sits one folder up in the repository).
    """

    def include(name: str) -> str:
        for folder in (path.parent, *search):
            candidate = folder / name
            if candidate.is_file():
                return candidate.read_text()
        raise ValueError(f"#include {name} in {path}: no such file")

    return parse(path.read_text(), include)


_MAX_INCLUDE_DEPTH = 10


def _lines(text: str, include: Callable[[str], str] | None, depth: int) -> list[str]:
    """The file's lines with each `#include` line replaced by the included file's."""
    out: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped.startswith("#include"):
            out.append(raw)
            continue
        if include is None:
            continue
        if depth >= _MAX_INCLUDE_DEPTH:
            raise ValueError("#include nested too deeply (a file including itself?)")
        name = stripped[len("#include") :].strip().strip('"<>')
        out.extend(_lines(include(name), include, depth + 1))
    return out


def _split3(rest: str) -> tuple[str, str, str]:
    pattern, _, tail = rest.partition(",")
    prio, _, app = tail.partition(",")
    return pattern.strip(), prio.strip(), app


def _priority(ext: Extension, text: str) -> tuple[int, str | None]:
    match = _PRIORITY.match(text)
    if match is None:
        raise ValueError(f"bad priority {text!r} in extension {ext.pattern}")
    number, label = match.groups()
    if number == "n":
        return (max(ext.steps) + 1 if ext.steps else 1), label
    return int(number), label


def _step(ext: Extension, prio_text: str, app_text: str) -> Step:
    priority, label = _priority(ext, prio_text)
    match = _APP.match(app_text)
    if match is None:
        raise ValueError(f"bad application {app_text!r} in extension {ext.pattern}")
    app, data = match.groups()
    return Step(priority, label, app, data or "")


def substitute(text: str, lookup: Callable[[str], str]) -> str:
    """Expand `${...}` (innermost first) and `$[...]` expressions, like pbx_substitute."""
    for _ in range(20):
        new = _VAR.sub(lambda m: lookup(m.group(1)), text)
        if new == text:
            break
        text = new
    return _EXPR.sub(lambda m: _expression(m.group(1)), text)


_COMPARE = re.compile(r"(!=|<=|>=|=|<|>)")
_SUM = re.compile(r"^\s*(-?\d+)\s*([-+])\s*(-?\d+)\s*$")


def _expression(expr: str) -> str:
    # Only what the sample needs: `a = b`, `a != b` (strings, quoted or not) and integer
    # comparisons of `x - y` or `x + y` (the holding context's EPOCH arithmetic).
    match = _COMPARE.search(expr)
    if match is None:
        return _operand(expr)
    op = match.group(1)
    left, right = _operand(expr[: match.start()]), _operand(expr[match.end() :])
    if op in ("=", "!="):
        return "1" if (left == right) == (op == "=") else "0"
    try:
        a, b = int(left), int(right)
    except ValueError:
        a, b = 0, 0  # Asterisk compares non-numbers as strings; the sample never does
    result = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    return "1" if result else "0"


def _operand(text: str) -> str:
    """A quoted string, an integer sum or difference, or the text as it stands."""
    text = text.strip()
    total = _SUM.match(text)
    if total is not None:
        a, sign, b = total.groups()
        return str(int(a) + int(b) if sign == "+" else int(a) - int(b))
    return text.strip('"')


def split_args(data: str) -> list[str]:
    """Application arguments split on commas (no quoting: the sample needs none)."""
    return [part.strip() for part in data.split(",")] if data else []
