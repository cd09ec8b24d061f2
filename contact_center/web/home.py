"""The landing page: what is running and where to look next, rendered on the server.

Served under the pages' policy (no inline style or script): its look is in style.css.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from contact_center import __version__
from contact_center.keys import DAEMON
from contact_center.web.pages import secure
from contact_center.web.routes import PUBLIC, RouteSpec


async def home(request: web.Request) -> web.StreamResponse:
    """A plain page listing each component's state and the operational endpoints."""
    daemon = request.app[DAEMON]
    rows = "\n".join(
        f"<tr><td>{escape(c.name)}</td>"
        f'<td class="state state-{escape(c.state)}">{escape(c.state)}</td>'
        f"<td>{escape(c.detail)}</td><td>{escape(c.last_error or '')}</td></tr>"
        for c in daemon.health.all()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Contact center</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body class="home">
<h1>Contact center <small>{escape(__version__)}</small></h1>
<p><a href="/login">Log in</a> to the <a href="/desktop">agent desktop</a> or the
<a href="/wallboard">supervisor wallboard</a>.</p>
<h2>Components</h2>
<table><tr><th>component</th><th>state</th><th>detail</th><th>last error</th></tr>
{rows}
</table>
<h2>Endpoints</h2>
<ul>
 <li><a href="/status"><code>/status</code></a>: the same, as JSON</li>
 <li><a href="/healthz"><code>/healthz</code></a>: liveness</li>
 <li><a href="/metrics"><code>/metrics</code></a>: Prometheus metrics</li>
 <li><a href="/api/v1/openapi.json"><code>/api/v1/openapi.json</code></a>: the JSON API</li>
</ul>
</body></html>"""
    return secure(web.Response(text=page, content_type="text/html"))


ROUTES = [RouteSpec("GET", "/", home, PUBLIC, "Landing page with component states")]
