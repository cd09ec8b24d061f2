"""Pages and their static files carry the security headers; no served HTML has inline code.

The pages' policy forbids inline script and style, so an inline `style=` is both a broken
page and a sign the policy is not what protects it. Every response under `/static/` and
every page is framed by nobody and sniffed by nobody.
"""

from __future__ import annotations

import re
from typing import Any

from contact_center.web.pages import STATIC_DIR
from tests.component.api_fixtures import Api

PAGES = ("/", "/login", "/desktop", "/wallboard", "/chat/demo")

_INLINE = [
    re.compile(r"\sstyle\s*=", re.I),  # style attribute
    re.compile(r"\son[a-z]+\s*=", re.I),  # event handler attribute
    re.compile(r"<style[\s>]", re.I),
    re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I),  # a script without src
    re.compile(r"javascript:", re.I),
]


def _assert_secure(headers: Any, what: str) -> None:
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, f"{what}: CSP {csp!r}"
    assert "default-src 'self'" in csp or "default-src 'none'" in csp, f"{what}: CSP {csp!r}"
    assert "'unsafe-inline'" not in csp, what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("X-Content-Type-Options") == "nosniff", what


def _inline_code(html: str) -> list[str]:
    return [m.group(0) for pattern in _INLINE for m in pattern.finditer(html)]


async def test_every_static_file_carries_the_security_headers(api: Api) -> None:
    client = await api.anonymous()
    names = sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file())
    assert {"desktop.js", "style.css", "wallboard.js"} <= set(names)
    for name in names:
        response = await client.get(f"/static/{name}")
        if name.endswith(".html"):
            # Pages are served at their own routes (with the login redirect); the same file
            # under /static would be an unguarded, frameable copy.
            assert response.status == 404, name
            continue
        assert response.status == 200, name
        _assert_secure(response.headers, f"/static/{name}")
    missing = await client.get("/static/nothing.js")
    assert missing.status == 404


async def test_every_page_carries_the_security_headers(api: Api) -> None:
    supervisor = await api.login("supervisor")
    for path in PAGES:
        response = await supervisor.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/html"
        _assert_secure(response.headers, path)


async def test_no_served_html_has_inline_style_or_script(api: Api) -> None:
    supervisor = await api.login("supervisor")
    for path in PAGES:
        html = await (await supervisor.get(path)).text()
        assert _inline_code(html) == [], path
    for page in STATIC_DIR.glob("*.html"):
        assert _inline_code(page.read_text()) == [], page.name


def test_the_inline_code_check_catches_what_it_should() -> None:
    for html in (
        '<a href="/x" style="color:#fff">',
        '<button onclick="go()">',
        "<style>body{}</style>",
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">',
    ):
        assert _inline_code(html), html
    assert _inline_code('<script type="module" src="/static/a.js"></script>') == []
