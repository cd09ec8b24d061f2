"""After logging in, the browser goes only to a page of this site (no open redirect).

The login page sends its `?next=` to the login API, which answers the page to go to: the
asked-for path when it is on this site, else the user's home page. The rule is checked
against a real WHATWG URL parser (Node's, when installed), since browsers read "\\" as "/"
and drop tabs and newlines.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from contact_center.web.auth import safe_next
from tests.component.api_fixtures import Api

ELSEWHERE = [
    "/\\evil.example/",
    "/\t/evil.example/",
    "/\n/evil.example",
    "/\r/evil.example",
    "//evil.example",
    "///evil.example",
    "/\\\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    " /desktop",
    "/desktop\x00",
    "/\x7f/evil.example",
    "/ /evil.example",
    "/desk top",
    "/\u3000/evil.example",
    "/\uff0f/evil.example",
    "evil.example",
    "",
    "/" + "a" * 2000,
]
ON_THIS_SITE = [
    "/",
    "/desktop",
    "/wallboard",
    "/desktop?tab=requests&x=%2F%2Fevil",
    "/desktop#top",
    "/%5Cevil.example/",  # a literal "%5C" in the path: still a path of this site
    "/%2F%2Fevil.example",
    "/a/./b/../c",
]


@pytest.mark.parametrize("target", ELSEWHERE)
def test_targets_off_this_site_are_refused(target: str) -> None:
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ON_THIS_SITE)
def test_paths_of_this_site_are_kept(target: str) -> None:
    assert safe_next(target) == target


def test_not_text_is_refused() -> None:
    assert safe_next(None) is None
    assert safe_next(["/desktop"]) is None


def test_the_rule_agrees_with_a_browser_url_parser() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed: no WHATWG URL parser to compare with")
    samples = ELSEWHERE + ON_THIS_SITE + [f"/{chr(c)}/evil.example" for c in range(0x7F)]
    script = (
        "const xs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(xs.map(x => {"
        "  try { return new URL(x, 'http://site.test/login').origin === 'http://site.test'; }"
        "  catch (e) { return false; } })));"
    )
    done = subprocess.run(
        [node, "-e", script], input=json.dumps(samples), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    same_origin = json.loads(done.stdout)
    for target, stays in zip(samples, same_origin, strict=True):
        if safe_next(target) is not None:
            assert stays, f"{target!r} is accepted but a browser leaves the site"


async def _login(api: Api, next_: object) -> tuple[int, dict[str, object]]:
    client = await api.anonymous()
    body = {"username": "agent", "password": "agent-pass-1"}
    if next_ is not None:
        body["next"] = next_  # type: ignore[assignment]
    response = await client.post("/api/v1/auth/login", json=body)
    return response.status, await response.json()


@pytest.mark.parametrize("target", ["/\\evil.example/", "/\t/evil.example/", "//evil.example"])
async def test_login_answers_the_home_page_for_a_foreign_next(api: Api, target: str) -> None:
    status, body = await _login(api, target)
    assert status == 200
    assert body["next"] == "/desktop"


async def test_login_answers_a_next_of_this_site(api: Api) -> None:
    status, body = await _login(api, "/desktop?tab=requests")
    assert status == 200
    assert body["next"] == "/desktop?tab=requests"
    status, body = await _login(api, None)
    assert status == 200 and body["next"] == "/desktop"
    supervisor = await (await api.anonymous()).post(
        "/api/v1/auth/login", json={"username": "supervisor", "password": "super-pass-1"}
    )
    assert (await supervisor.json())["next"] == "/wallboard"


async def test_login_page_script_uses_the_servers_answer(api: Api) -> None:
    client = await api.anonymous()
    script = await (await client.get("/static/login.js")).text()
    assert "session.next" in script
    assert 'startsWith("/") && !next.startsWith("//")' not in script  # the old, leaky check
