"""Typed aiohttp application keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from contact_center.app import Daemon

DAEMON: web.AppKey[Daemon] = web.AppKey("daemon")
