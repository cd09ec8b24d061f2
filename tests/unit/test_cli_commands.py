"""The CLI's command table: every command names a function that exists, and `--help` stays light.

`contact_center/cli/entry.py` names each command's function as "module:function" and imports
the module only when the command runs; a typo there would surface only when a user runs
that command, so every entry is resolved here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from contact_center.cli.entry import build_parser, function_of


def leaves(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command line's words and its parser."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield words, parser
    for action in actions:
        for name, child in action.choices.items():
            yield from leaves(child, (*words, name))


COMMANDS = dict(leaves(build_parser()))


def test_the_table_lists_every_command() -> None:
    assert {" ".join(words) for words in COMMANDS} == {
        "run",
        "check-config",
        "db upgrade",
        "db seed-demo",
        "users add",
        "users list",
        "users disable",
        "users enable",
        "users password",
        "users set",
        "customers import",
        "customers export",
        "replay",
    }


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_every_command_names_a_function_that_exists(words: tuple[str, ...]) -> None:
    target = COMMANDS[words].get_default("function")
    assert isinstance(target, str), f"{' '.join(words)} names no function"
    function = function_of(argparse.Namespace(function=target))
    assert callable(function)
    assert function.__doc__, f"{target} has no docstring"


def test_help_loads_no_store_nor_web_code() -> None:
    # `contact-center --help` and a wrong command line must stay fast: only the command
    # that runs imports the database code or the web application.
    probe = (
        "import sys\n"
        "from contact_center.cli.entry import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlalchemy', 'aiohttp', 'contact_center.app', 'contact_center.cli.run',\n"
        "         'crm_store.database', 'crm_store.users')\n"
        "loaded = {m if m in heavy else m.split('.')[0] for m in sys.modules}\n"
        "print(' '.join(sorted(loaded & set(heavy))), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("usage: contact-center")
    assert result.stderr.strip() == "", f"--help loaded: {result.stderr}"
