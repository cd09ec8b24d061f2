"""Bytes of any declared charset, and header words, to clean display text; pure, never raises.

Mail declares charsets loosely: `gb2312` bodies hold GBK-only characters, `big5` means
Microsoft's cp950, `iso-8859-1` text has Windows smart quotes, `us-ascii` parts are UTF-8,
and some names are no charset at all (`unknown-8bit`, `x-user-defined`, typos). So a
declared charset is tried first, strictly; then the superset it really means; then UTF-8.
When nothing decodes cleanly: the declared charset with replacement characters if it is a
real one; otherwise UTF-8 with replacements if the bytes are mostly UTF-8, else
Latin-1, which keeps every byte visible rather than turning it into "?".
"""

from __future__ import annotations

import codecs
import re
from email.header import decode_header

# What a declared charset usually means, tried after it (codec names as codecs.lookup
# spells them).
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "hz": ("gb18030",),
    "big5": ("cp950", "big5hkscs"),
    "cp950": ("big5hkscs",),
    "euc_kr": ("cp949",),
    "shift_jis": ("cp932",),
    "euc_jp": ("cp932",),
    "iso8859-1": ("cp1252",),
    "iso8859-9": ("cp1254",),
    "iso8859-2": ("cp1250",),
}
# Latin-1 first would show Windows quotes as invisible C1 controls: cp1252 goes first.
_PREFERRED: dict[str, str] = {"iso8859-1": "cp1252"}
_ASCII = "ascii"
_CHARSET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:()+-]{0,39}")
# Bytes that are mostly UTF-8: this many valid non-ASCII characters per invalid byte.
_UTF8_MAJORITY = 4
_LINE_JUNK_RE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]+")  # one-line fields
_TEXT_JUNK_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")  # bodies keep \t \n
_BLANKS_RE = re.compile(r"\s+")


def codec_name(charset: str | None) -> str | None:
    """The Python codec of a declared charset name, or None when there is none."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if not _CHARSET_NAME_RE.fullmatch(name):
        return None
    for candidate in (name, name.removeprefix("x-"), name.replace("_", "-")):
        try:
            info = codecs.lookup(candidate)
        except LookupError:
            continue
        try:
            "".encode(info.name)  # bytes-to-bytes codecs (zlib, base64, rot13) are not text
        except LookupError:
            return None
        return info.name
    return None


def decode_text(data: bytes, charset: str | None) -> str:
    """The text of bytes said to be in `charset` (None when undeclared)."""
    declared = codec_name(charset)
    order: list[str] = []
    if declared and declared != _ASCII:
        order.append(_PREFERRED.get(declared, declared))
        order.append(declared)
        order.extend(_SUPERSETS.get(declared, ()))
    order.extend(("ascii", "utf-8"))
    for name in dict.fromkeys(order):  # in order, once each
        try:
            return data.decode(name)
        except (UnicodeError, LookupError):
            continue
    if declared and declared != _ASCII:
        return data.decode(declared, "replace")
    guess = data.decode("utf-8", "replace")
    bad = guess.count("\ufffd")
    good = sum(1 for ch in guess if ord(ch) > 127) - bad
    if good >= _UTF8_MAJORITY * bad:
        return guess
    return data.decode("latin-1")


def repair_surrogates(text: str, charset: str | None) -> str:
    """Text whose raw 8-bit bytes the parser kept as surrogates, decoded properly.

    The stdlib reads header bytes as ASCII with `surrogateescape`; a header sent as raw
    UTF-8 or GBK comes back as lone surrogates, which no database or browser accepts.
    """
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Surrogates outside the escape range: not bytes in disguise, just drop them.
        return text.encode("utf-8", "replace").decode("utf-8")
    return decode_text(raw, charset)


def decode_words(raw: str, charset_hint: str | None) -> str:
    """An unstructured header value (Subject, a display name): RFC 2047 words decoded."""
    try:
        chunks = decode_header(raw)
    except Exception:  # HeaderParseError on bad base64, and the like: keep the raw text
        chunks = [(raw, None)]
    pieces: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            pieces.append(repair_surrogates(chunk, charset_hint))
        elif charset is None:
            # Unencoded text between encoded words comes back as raw-unicode-escape bytes.
            text = chunk.decode("raw-unicode-escape", "replace")
            pieces.append(repair_surrogates(text, charset_hint))
        else:
            pieces.append(decode_text(chunk, charset))
    return clean_line("".join(pieces))


def clean_line(text: str) -> str:
    """One line of display text: controls and lone surrogates become one space."""
    return _BLANKS_RE.sub(" ", _LINE_JUNK_RE.sub(" ", text)).strip()


def clean_text(text: str) -> str:
    """Display text: newlines as LF, no controls but tab and LF, no lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _TEXT_JUNK_RE.sub("", text)
