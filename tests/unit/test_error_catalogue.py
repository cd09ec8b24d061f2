"""The error catalogue matches the code: every id raised is listed, every listed id is
raised, and an API error's literal status is the catalogue's.

The source is scanned (its syntax tree, not its text): an `error_id = "..."` class
attribute, an `error_id` parameter's default, and every id-shaped text handed to an
error constructor (`...Error(...)`) or to the web's error-body helpers.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from crm_store.error_ids import (
    CATALOGUE,
    HTTP_ERROR_PREFIX,
    INTERNAL,
    ErrorKind,
    catalogue_of,
    status_of,
)
from crm_store.errors import ContactCenterError
from routing.router import RoutingError
from routing.telephony import TelephonyError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contact_center", "adapters", "routing", "ivr_flows", "crm_store")
# What an id looks like: dotted lower-case words (`routing.no_pbx`), or `internal`.
ID_SHAPE = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+|internal")
# Calls that take an id without being named ...Error: the web's error-body helpers.
ID_TAKERS = {"error_response", "_error"}


@dataclass(frozen=True)
class Use:
    """One id found in the source, with the literal status beside it when there is one."""

    error_id: str
    where: str
    status: int | None = None


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _ids_in(path: Path) -> list[Use]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Use] = []
    rel = path.relative_to(ROOT)
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = any(isinstance(t, ast.Name) and t.id == "error_id" for t in targets)
            if named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                found.append(Use(node.value.value, where))
        elif isinstance(node, ast.arguments):
            params = [*node.posonlyargs, *node.args]
            defaults = dict(
                zip(params[len(params) - len(node.defaults) :], node.defaults, strict=True)
            )
            defaults.update(
                (arg, d)
                for arg, d in zip(node.kwonlyargs, node.kw_defaults, strict=True)
                if d is not None
            )
            for arg, default in defaults.items():
                if arg.arg == "error_id" and isinstance(default, ast.Constant):
                    found.append(Use(str(default.value), where))
        elif isinstance(node, ast.Call):
            name = _callee(node)
            if not (name.endswith("Error") or name in ID_TAKERS):
                continue
            args = [*node.args, *(kw.value for kw in node.keywords)]
            for i, arg in enumerate(args):
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    continue
                if not ID_SHAPE.fullmatch(arg.value):
                    continue
                status = None
                if i > 0 and i <= len(node.args):
                    before = node.args[i - 1]
                    if isinstance(before, ast.Constant) and type(before.value) is int:
                        status = before.value
                found.append(Use(arg.value, f"{rel}:{arg.lineno}", status))
    return found


def _source_uses() -> list[Use]:
    uses: list[Use] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            uses.extend(_ids_in(path))
    return uses


USES = _source_uses()


def test_the_scan_finds_the_ids_it_should() -> None:
    # Guards the scanner itself: one id of each way of naming one.
    ids = {use.error_id for use in USES}
    assert {"store.not_found", "telephony.failed", "routing.no_pbx", "auth.required"} <= ids
    assert {"request.unknown_type", "internal", "database.unavailable"} <= ids


def test_every_id_raised_is_in_the_catalogue() -> None:
    missing = sorted(f"{u.error_id} ({u.where})" for u in USES if status_of(u.error_id) is None)
    assert not missing, "add these ids to crm_store/error_ids.py: " + ", ".join(missing)


def test_every_catalogued_id_is_raised_somewhere() -> None:
    used = {use.error_id for use in USES}
    unused = sorted(set(CATALOGUE) - used)
    assert not unused, "catalogued but never raised (drop them): " + ", ".join(unused)


def test_a_literal_status_beside_an_id_is_the_catalogues() -> None:
    wrong = sorted(
        f"{u.where}: {u.error_id} is {u.status}, the catalogue says {status_of(u.error_id)}"
        for u in USES
        if u.status is not None and u.error_id in CATALOGUE and u.status != status_of(u.error_id)
    )
    assert not wrong, "\n".join(wrong)


def test_the_catalogue_lists_each_id_once_with_a_meaning() -> None:
    with pytest.raises(ValueError, match=r"store\.error listed twice"):
        catalogue_of([("store.error", 400, "a"), ("store.error", 409, "b")])
    for kind in CATALOGUE.values():
        assert isinstance(kind, ErrorKind) and ID_SHAPE.fullmatch(kind.error_id), kind
        assert 400 <= kind.status <= 599, kind
        assert kind.meaning and "\n" not in kind.meaning, kind
    assert INTERNAL in CATALOGUE


@pytest.mark.parametrize(
    ("error_id", "status"), [("http.404", 404), ("http.405", 405), ("http.200", None)]
)
def test_aiohttp_errors_are_a_family(error_id: str, status: int | None) -> None:
    assert error_id.startswith(HTTP_ERROR_PREFIX)
    assert status_of(error_id) == status


def test_routing_and_telephony_errors_share_the_root() -> None:
    routing = RoutingError("routing.no_pbx", "no PBX is connected")
    telephony = TelephonyError("no call 7")
    assert isinstance(routing, ContactCenterError) and isinstance(telephony, ContactCenterError)
    assert (routing.error_id, routing.message) == ("routing.no_pbx", "no PBX is connected")
    assert (telephony.error_id, telephony.message) == ("telephony.failed", "no call 7")
    assert str(routing) == "no PBX is connected"
    assert TelephonyError("x", "telephony.no_call").error_id == "telephony.no_call"
    # The class's own id is catalogued: the fallback for an id the catalogue lacks.
    assert status_of(RoutingError.error_id) == 409 and status_of(TelephonyError.error_id) == 409
