"""Load IVR flows from YAML files and check them as a whole.

Every problem names the flow and the step
(`flow main, step menu1: choice "3" goes to unknown step "billing"`), and all
problems of all flows are reported together so one edit-and-check round fixes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from crm_store.errors import ContactCenterError
from ivr_flows import safe_yaml
from ivr_flows.model import (
    STEP_TYPES,
    TERMINAL_TYPES,
    CollectStep,
    Flow,
    HangupStep,
    MenuStep,
    PlayStep,
    QueueStep,
)

_STEP_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_FLOW_KEYS = ("name", "start", "steps", "max_steps")


class FlowError(ContactCenterError):
    """One or more IVR flows are invalid; `problems` lists one line per problem."""

    error_id = "ivr.flow_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid IVR flow:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def load_flows(directory: str | Path, known_queues: set[str] | None = None) -> dict[str, Flow]:
    """Read and validate every `*.yaml` flow in a directory, keyed by file name stem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FlowError([f"{directory}: flows directory not found"])
    flows: dict[str, Flow] = {}
    problems: list[str] = []
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in paths:
        name = path.stem
        if name in flows:
            problems.append(f"flow {name}: defined twice ({path.name})")
            continue
        try:
            # Bounded: size, depth, no recursive aliases nor alias bombs (safe_yaml).
            raw = safe_yaml.loads(safe_yaml.read_text(path))
        except OSError as exc:
            problems.append(f"flow {name}: cannot read {path} ({exc.strerror})")
            continue
        except UnicodeDecodeError as exc:
            problems.append(
                f"flow {name}: cannot read {path} (not UTF-8 text: byte {exc.start + 1} "
                f"is {exc.object[exc.start : exc.start + 1]!r})"
            )
            continue
        except safe_yaml.YamlTooLarge as exc:
            problems.append(f"flow {name}: refused {path}: the file is {exc}")
            continue
        except yaml.YAMLError as exc:
            where, problem = safe_yaml.describe(exc)
            where = where.replace(" line", " at line", 1)
            problems.append(f"flow {name}: invalid YAML{where}: {problem}")
            continue
        try:
            flows[name] = validate_flow(raw, name, known_queues)
        except FlowError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FlowError(problems)
    return flows


def validate_flow(raw: object, name: str, known_queues: set[str] | None = None) -> Flow:
    """Validate one flow's raw data (as read from YAML); raises FlowError listing every problem."""
    where = f"flow {name}"
    if not isinstance(raw, dict):
        raise FlowError([f"{where}: expected a mapping with start and steps, got {_kind(raw)}"])
    problems = [f'{where}: unknown key "{key}"' for key in raw if key not in _FLOW_KEYS]
    declared = raw.get("name", name)
    if declared != name:
        problems.append(f'{where}: name "{declared}" does not match the file name "{name}"')
    start = raw.get("start")
    if not isinstance(start, str) or not start:
        problems.append(f'{where}: missing "start" (the id of the first step)')
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, dict) or not raw_steps:
        problems.append(f'{where}: missing "steps" (a mapping of step id to step)')
        raise FlowError(problems)

    steps: dict[str, Any] = {}
    for step_id, raw_step in raw_steps.items():
        if not isinstance(step_id, str) or not _STEP_ID.match(step_id):
            problems.append(f'{where}: step id "{step_id}" must be letters, digits, _ . or -')
            continue
        step, step_problems = _parse_step(raw_step, f"{where}, step {step_id}")
        problems.extend(step_problems)
        if step is not None:
            steps[step_id] = step
    max_steps = raw.get("max_steps", 50)
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        problems.append(f"{where}: max_steps must be a positive integer, got {max_steps!r}")
    if problems:
        # Whole-flow checks on a partly parsed flow would only add confusing follow-ups.
        raise FlowError(problems)

    assert isinstance(start, str)  # checked above; narrows for mypy
    flow = Flow(name=name, start=start, steps=steps, max_steps=max_steps)
    problems = _check_flow(flow, known_queues)
    if problems:
        raise FlowError(problems)
    return flow


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _parse_step(raw: object, where: str) -> tuple[Any, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{where}: expected a mapping, got {_kind(raw)}"]
    step_type = raw.get("type")
    if step_type is None:
        return None, [f'{where}: missing "type"']
    model = STEP_TYPES.get(step_type) if isinstance(step_type, str) else None
    if model is None:
        expected = ", ".join(STEP_TYPES)
        return None, [f'{where}: unknown step type "{step_type}" (expected one of {expected})']
    try:
        return model.model_validate(raw), []
    except ValidationError as exc:
        return None, [f"{where}: {_reword(error)}" for error in exc.errors()]


def _reword(error: Mapping[str, Any]) -> str:
    """A pydantic error as `key: problem`, in the words of the flow language."""
    loc = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f'unknown key "{loc}"'
    if error["type"] == "missing":
        return f'missing "{loc}"'
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


def _check_flow(flow: Flow, known_queues: set[str] | None) -> list[str]:
    where = f"flow {flow.name}"
    problems: list[str] = []
    if flow.start not in flow.steps:
        problems.append(f'{where}: start step "{flow.start}" does not exist')

    edges: dict[str, list[str]] = {}
    for step_id, step in flow.steps.items():
        at = f"{where}, step {step_id}"
        edges[step_id] = []
        for label, target in step.targets():
            if target in flow.steps:
                edges[step_id].append(target)
            else:
                problems.append(f'{at}: {label} goes to unknown step "{target}"')
        problems.extend(f"{at}: {p}" for p in _prompt_problems(step))
        if (
            isinstance(step, QueueStep)
            and known_queues is not None
            and step.queue not in known_queues
        ):
            known = ", ".join(sorted(known_queues)) or "none"
            problems.append(f'{at}: queue "{step.queue}" is not configured (known: {known})')

    if flow.start in flow.steps:
        reachable = _reachable([flow.start], edges)
        problems.extend(
            f'{where}, step {step_id}: unreachable from start step "{flow.start}"'
            for step_id in flow.steps
            if step_id not in reachable
        )
    problems.extend(_loop_problems(flow, edges))
    return problems


def _prompt_problems(step: object) -> list[str]:
    problems: list[str] = []
    if isinstance(step, PlayStep | MenuStep | CollectStep) and not step.prompt.strip():
        problems.append("prompt is empty")
    if isinstance(step, HangupStep) and step.prompt is not None and not step.prompt.strip():
        problems.append("prompt is empty (leave it out to hang up silently)")
    if (
        isinstance(step, MenuStep | CollectStep)
        and step.invalid_prompt is not None
        and not step.invalid_prompt.strip()
    ):
        problems.append("invalid_prompt is empty (leave it out to repeat the prompt)")
    return problems


def _reachable(roots: Iterable[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        step_id = todo.pop()
        if step_id not in seen:
            seen.add(step_id)
            todo.extend(edges.get(step_id, []))
    return seen


def _loop_problems(flow: Flow, edges: Mapping[str, list[str]]) -> list[str]:
    """Loops no path leads out of: the call would go round them forever."""
    reverse: dict[str, list[str]] = {step_id: [] for step_id in flow.steps}
    for source, targets in edges.items():
        for target in targets:
            reverse[target].append(source)
    # A step with a missing target counts as an exit: that problem is reported already.
    exits = [
        step_id
        for step_id, step in flow.steps.items()
        if step.type in TERMINAL_TYPES or len(edges[step_id]) < len(step.targets())
    ]
    can_finish = _reachable(exits, reverse)
    stuck = [step_id for step_id in flow.steps if step_id not in can_finish]

    problems: list[str] = []
    covered: set[str] = set()
    stuck_set = set(stuck)
    for step_id in stuck:
        if step_id in covered:
            continue
        # The steps that lead from here and back again: this step's strongly connected part.
        ahead = _reachable([step_id], {s: edges[s] for s in stuck_set})
        behind = _reachable([step_id], {s: reverse[s] for s in stuck_set})
        loop = [s for s in flow.steps if s in ahead and s in behind]
        if len(loop) == 1 and step_id not in edges[step_id]:
            continue  # only leads into a loop, which is reported on its own
        covered.update(loop)
        problems.append(
            f"flow {flow.name}, step {loop[0]}: loop through {', '.join(loop)} "
            "never reaches an ending step"
        )
    return problems
