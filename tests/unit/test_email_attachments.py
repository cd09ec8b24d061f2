"""Attachments written under the attachment folder: limits, metadata, no path traversal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.email.attachments import (
    MAX_NAME_BYTES,
    attachment_dir,
    keep_attachments,
    safe_filename,
)
from adapters.email.mime_walk import AttachmentPart, human_size
from adapters.email.parse import parse_email

FIXTURES = Path(__file__).parent.parent / "fixtures" / "email"


def parsed_attachments(
    max_attachment_bytes: int = 50_000,
) -> tuple[str, tuple[AttachmentPart, ...]]:
    parsed = parse_email(
        (FIXTURES / "attachments.eml").read_bytes(),
        max_body_bytes=10_000,
        max_attachment_bytes=max_attachment_bytes,
        mailbox_address="support@example.com",
    )
    return parsed.provider_id, parsed.attachments


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_parsed_attachments_and_their_limits() -> None:
    _, parts = parsed_attachments()
    assert [(p.filename, p.content_type, p.size, p.dropped) for p in parts] == [
        ("invoice-4471.pdf", "application/pdf", 69, None),
        ("attachment-2.png", "image/png", 70, None),  # inline, no name: one is made
        ("logs.zip", "application/zip", 65536, "over 48.8 kB"),
        ("报价单.pdf", "application/pdf", 69, None),  # RFC 2231 filename*=
        (
            "报价单.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            29,
            None,
        ),
        ("../../../etc/cron.d/evil.sh", "text/x-shellscript", 10, None),
        ("C:\\Users\\victim\\Desktop\\run.bat", "application/octet-stream", 9, None),
        ("message.eml", "message/rfc822", 169, None),
    ]
    assert parts[0].content is not None and parts[0].content.startswith(b"%PDF-1.4")
    assert parts[2].content is None
    _, generous = parsed_attachments(max_attachment_bytes=10 * 1024**2)
    assert generous[2].content is not None and len(generous[2].content) == 65536


def test_keep_writes_kept_files_and_lists_dropped_ones(tmp_path: Path) -> None:
    provider_id, parts = parsed_attachments()
    kept = keep_attachments(tmp_path, provider_id, parts)
    folder = hashlib.sha256(provider_id.encode()).hexdigest()
    assert attachment_dir(provider_id) == folder
    assert [(a.filename, a.ref, a.dropped) for a in kept] == [
        ("invoice-4471.pdf", f"{folder}/1-invoice-4471.pdf", None),
        ("attachment-2.png", f"{folder}/2-attachment-2.png", None),
        ("logs.zip", None, "over 48.8 kB"),
        ("报价单.pdf", f"{folder}/4-报价单.pdf", None),
        ("报价单.xlsx", f"{folder}/5-报价单.xlsx", None),
        ("../../../etc/cron.d/evil.sh", f"{folder}/6-evil.sh", None),
        ("C:\\Users\\victim\\Desktop\\run.bat", f"{folder}/7-run.bat", None),
        ("message.eml", f"{folder}/8-message.eml", None),
    ]
    assert kept[2].size == 65536
    # Everything is inside the folder, nothing else was written, no temporary files left.
    assert files_under(tmp_path) == sorted(a.ref for a in kept if a.ref)
    assert (tmp_path / f"{folder}/6-evil.sh").read_bytes() == b"echo owned"
    assert (tmp_path / f"{folder}/1-invoice-4471.pdf").read_bytes() == parts[0].content


def test_keeping_again_is_idempotent(tmp_path: Path) -> None:
    provider_id, parts = parsed_attachments()
    first = keep_attachments(tmp_path, provider_id, parts)
    assert keep_attachments(tmp_path, provider_id, parts) == first
    assert len(files_under(tmp_path)) == 7


def test_a_provider_id_cannot_steer_the_path(tmp_path: Path) -> None:
    part = AttachmentPart("a.txt", "text/plain", 1, b"x")
    (kept,) = keep_attachments(tmp_path / "store", "../../outside", [part])
    assert kept.ref is not None and ".." not in kept.ref
    assert files_under(tmp_path) == [f"store/{kept.ref}"]


def test_nothing_kept_writes_nothing(tmp_path: Path) -> None:
    dropped = AttachmentPart("big.iso", "application/octet-stream", 10**9, None, "over 10 MB")
    assert keep_attachments(tmp_path, "id@x", [dropped])[0].dropped == "over 10 MB"
    assert keep_attachments(tmp_path, "id@x", []) == ()
    assert files_under(tmp_path) == []


def test_write_failure_is_raised_not_hidden(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_bytes(b"")
    with pytest.raises(OSError):
        keep_attachments(blocker, "id@x", [AttachmentPart("a", "text/plain", 1, b"x")])


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
        ("/absolute/path.txt", "path.txt"),
        ("..", "attachment"),
        ("...", "attachment"),
        (".bashrc", "bashrc"),
        ("", "attachment"),
        ("   ", "attachment"),
        ("a\x00b\r\nc.txt", "a_b_c.txt"),
        ('what?<is>:this|"*.txt', "what_is_this_.txt"),
        ("trailing dot. ", "trailing dot"),
        ("Re\u0301sume\u0301.pdf", "Résumé.pdf"),  # one spelling (NFC) for one name
        ("报价单.xlsx", "报价单.xlsx"),
        ("raw\udce9.txt", "raw_.txt"),  # a lone surrogate is no file name character
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_long_names_keep_their_suffix() -> None:
    name = safe_filename("长" * 200 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_NAME_BYTES
    assert name.removesuffix(".pdf").strip("长") == ""
    no_suffix = safe_filename("x" * 500)
    assert no_suffix == "x" * MAX_NAME_BYTES


@given(st.text(max_size=300))
def test_any_name_is_one_harmless_component(name: str) -> None:
    safe = safe_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and "\0" not in safe
    assert safe not in (".", "..") and not safe.startswith(".")
    assert len(safe.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES


def test_human_size() -> None:
    assert human_size(10 * 1024**2) == "10 MB"
    assert human_size(512 * 1024) == "512 kB"
    assert human_size(900) == "900 bytes"
