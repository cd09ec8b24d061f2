"""A real Dovecot IMAP server for the integration tests, with its own configuration.

Dovecot (Debian: `dovecot-imapd`) runs in the foreground (`dovecot -F -c <ours>`) from a
private folder: its own base_dir, state dir, log, a passwd-file with one user and a
Maildir, listening on 127.0.0.1 only, on a free port, without TLS or (`tls=True`) with implicit TLS
and a self-signed certificate. When the binary is
absent the tests are skipped with the reason (a failure under CC_REQUIRE_INTEGRATION=1).

As root (CI), Dovecot will not run its login processes or mail access as root: they run
as the users the package created (`dovenull`, `dovecot`), so the folder lives under the
system temporary directory (not pytest's 0700 one) and the Maildir belongs to `dovecot`.
As any other user, every Dovecot process runs as that user.

The test delivers mail with IMAP APPEND and looks at flags through the standard
library's imaplib (in a thread): a client independent of the code under test.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.conftest import require_server

T = TypeVar("T")

USER, PASSWORD = "agent", "agent-secret"
# What Dovecot 2.3 lists after login, less IDLE: a server without IDLE for the polling path.
CAPABILITY_WITHOUT_IDLE = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS"

# Dovecots still running: killed at interpreter exit too, should a run end without the
# fixtures' clean-up.
_RUNNING: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for group in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def dovecot_binary() -> str:
    """The dovecot executable, or a skip (failure under CC_REQUIRE_INTEGRATION=1)."""
    configured = os.environ.get("CC_DOVECOT")
    if configured:
        if not Path(configured).is_file():
            require_server(f"no dovecot at CC_DOVECOT={configured}")
        return configured
    found = shutil.which("dovecot")
    if found is None and Path("/usr/sbin/dovecot").is_file():
        found = "/usr/sbin/dovecot"  # /usr/sbin is not on every user's PATH
    if found is None:
        require_server("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    assert found is not None
    return found


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made by `openssl req` (skip when openssl is absent):
    (cert.pem, key.pem) in `folder`. Clients trust it with `trusting(cert)`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        require_server("openssl is not installed (needed to make a test certificate)")
    assert openssl is not None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-nodes", "-days", "2",
         "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts `cert` (and checks the host name against it)."""
    return ssl.create_default_context(cafile=str(cert))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _users_settings(mail_dir: Path) -> str:
    """Who Dovecot's processes run as: see the module docstring."""
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("dovecot")
        os.chown(mail_dir, mail_user.pw_uid, mail_user.pw_gid)
        return (
            f"mail_uid = {mail_user.pw_uid}\nmail_gid = {mail_user.pw_gid}\n"
            f"first_valid_uid = {mail_user.pw_uid}\n"
        )
    me = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(os.getgid()).gr_name
    return (
        f"default_internal_user = {me.pw_name}\ndefault_internal_group = {group}\n"
        f"default_login_user = {me.pw_name}\nfirst_valid_uid = {me.pw_uid}\n"
        # Only root may chroot.
        "service imap-login {\n  chroot =\n}\nservice anvil {\n  chroot =\n}\n"
    )


class DovecotServer:
    """One Dovecot process with one user (`USER`/`PASSWORD`) and a Maildir."""

    def __init__(self, *, idle: bool = True, tls: bool = False) -> None:
        self.binary = dovecot_binary()
        self.port = free_port()
        self.idle = idle
        # Short and world-traversable: Dovecot's own users must reach it, and its Unix
        # sockets must fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="cc-dovecot-"))
        self.root.chmod(0o755)
        self.mail = self.root / "mail"
        self.process: asyncio.subprocess.Process | None = None
        # With `tls`, the port speaks implicit TLS (imaps) with a self-signed certificate
        # that `client_tls` trusts.
        self.client_tls: ssl.SSLContext | None = None
        if tls:
            self.certificate = self_signed_certificate(self.root)
            self.client_tls = trusting(self.certificate[0])

    def write_config(self) -> Path:
        """dovecot.conf for this server (rewritten on every start)."""
        for sub in ("run", "state"):
            (self.root / sub).mkdir(exist_ok=True)
        self.mail.mkdir(exist_ok=True)
        (self.root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        capability = "" if self.idle else f"imap_capability = {CAPABILITY_WITHOUT_IDLE}\n"
        tls = "ssl = no\n"
        if self.client_tls is not None:
            cert, key = self.certificate
            tls = f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}\n"
        conf = self.root / "dovecot.conf"
        conf.write_text(
            f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
instance_name = cc-test-{self.port}
log_path = {self.root}/dovecot.log
{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.mail}/Maildir
mail_home = {self.mail}
{_users_settings(self.mail)}{capability}
passdb {{
  driver = passwd-file
  args = {self.root}/users
}}
userdb {{
  driver = passwd-file
  args = {self.root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
    ssl = {"yes" if self.client_tls is not None else "no"}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )
        return conf

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start Dovecot on this server's port and wait until it accepts connections."""
        conf = self.write_config()
        with (self.root / "stderr.log").open("ab") as errors:
            self.process = await asyncio.create_subprocess_exec(
                self.binary,
                "-F",
                "-c",
                str(conf),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                # Its own process group: stop() ends the imap/auth/log children too (the
                # master alone leaves them serving the connections they have).
                start_new_session=True,
            )
        _RUNNING.add(self.process.pid)
        deadline = time.monotonic() + 10
        # Ready when the login service greets: a master stopped before that can take
        # seconds to go.
        while not await self._greets():
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not start: {self.log_tail()}")
            await asyncio.sleep(0.02)

    async def _greets(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.port, ssl=self.client_tls
            )
        except OSError:
            return False
        try:
            return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"* OK")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def stop(self) -> None:
        """Stop Dovecot (SIGTERM, then SIGKILL) and wait for it: always safe to call."""
        process, self.process = self.process, None
        if process is None:
            return
        _RUNNING.discard(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        # The children go on their own after the master: wait until the group is empty.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    async def close(self) -> None:
        """Stop and remove the server's folder."""
        await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The end of Dovecot's log (for failure messages)."""
        text = ""
        for name in ("stderr.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # --- the test's own client (stdlib imaplib in a thread) ----------------------------

    async def _client(self, work: Callable[[imaplib.IMAP4], T]) -> T:
        def run() -> T:
            client = (
                imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=self.client_tls, timeout=10)
                if self.client_tls is not None
                else imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
            )
            try:
                client.login(USER, PASSWORD)
                return work(client)
            finally:
                with contextlib.suppress(Exception):
                    client.logout()

        return await asyncio.to_thread(run)

    async def append(self, raw: bytes, mailbox: str = "INBOX") -> int:
        """Deliver one message by APPEND; its UID (from Dovecot's APPENDUID)."""

        def work(client: imaplib.IMAP4) -> int:
            status, data = client.append(mailbox, "", None, raw)
            assert status == "OK", data
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert found is not None, data
            return int(found.group(1))

        return await self._client(work)

    def deliver_to_maildir(self, raw: bytes) -> None:
        """Deliver into INBOX as a local delivery agent does, with no server running:
        write in tmp/, rename into new/ (Dovecot gives it a UID when it next looks)."""
        maildir = self.mail / "Maildir"
        name = f"{time.time_ns()}.P{os.getpid()}.cc-test"
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        (maildir / "tmp" / name).write_bytes(raw)
        if os.geteuid() == 0:  # the mail belongs to the mail user, as Dovecot's own does
            owner = pwd.getpwnam("dovecot")
            for path in (maildir, maildir / "tmp", maildir / "new", maildir / "cur"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            os.chown(maildir / "tmp" / name, owner.pw_uid, owner.pw_gid)
        (maildir / "tmp" / name).rename(maildir / "new" / name)

    async def flags(self, uid: int, mailbox: str = "INBOX") -> set[str]:
        """The flags of one message (read-only: EXAMINE does not change them)."""

        def work(client: imaplib.IMAP4) -> set[str]:
            client.select(mailbox, readonly=True)
            status, data = client.uid("FETCH", str(uid), "(FLAGS)")
            assert status == "OK" and data and data[0], data
            line = data[0] if isinstance(data[0], bytes) else data[0][0]
            found = re.search(rb"FLAGS \(([^)]*)\)", line)
            assert found is not None, data
            return set(found.group(1).decode().split())

        return await self._client(work)

    async def create(self, mailbox: str) -> None:
        """CREATE a mailbox."""
        await self._client(lambda client: _ok(client.create(mailbox)))

    async def delete(self, mailbox: str) -> None:
        """DELETE a mailbox (its next incarnation gets a new UIDVALIDITY)."""
        await self._client(lambda client: _ok(client.delete(mailbox)))

    async def uidvalidity(self, mailbox: str = "INBOX") -> int:
        """The mailbox's UIDVALIDITY (STATUS)."""

        def work(client: imaplib.IMAP4) -> int:
            status, data = client.status(mailbox, "(UIDVALIDITY)")
            found = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert status == "OK" and found is not None, data
            return int(found.group(1))

        return await self._client(work)


def _ok(reply: tuple[str, list[bytes | None]]) -> None:
    status, data = reply
    assert status == "OK", data
