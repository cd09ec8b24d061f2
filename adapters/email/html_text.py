"""HTML mail bodies reduced to plain text for display, pure.

What an agent needs from an HTML-only mail (Outlook sends many) is its words: no tags, no
script or style content, no hidden preheader, block elements on their own lines, links
with their target shown in brackets (`our portal [https://portal.example.com/]`) so a
phishing link reads as what it is. The tree comes from BeautifulSoup with the stdlib
`html.parser` backend, which accepts any markup; the walk is iterative, so a mail of
100 000 nested `<div>`s cannot exhaust the stack.
"""

from __future__ import annotations

import html as html_entities
import re

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, Tag
from bs4.exceptions import ParserRejectedMarkup

# Elements whose content is never text for a reader.
_SKIPPED = frozenset(
    {"script", "style", "head", "title", "noscript", "template", "iframe", "object", "svg"}
    | {"embed", "applet", "frame", "frameset", "select", "button", "map", "audio", "video"}
)
# Elements that start and end a line.
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "form"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table"}
    | {"blockquote", "pre", "address", "center", "fieldset", "figure", "figcaption"}
    | {"caption", "thead", "tbody", "tfoot", "body", "html", "details", "summary", "legend"}
)
_ROWS = frozenset({"tr", "dt", "dd"})  # a line each, without blank lines between
_CELLS = frozenset({"td", "th"})
_SHOWN_SCHEMES = ("http://", "https://", "mailto:", "tel:", "ftp://")
_HIDDEN_STYLE_RE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_BLANKS_RE = re.compile(r"[ \t\r\n\f\v\xa0]+")
# Zero-width padding newsletters put in preheaders; U+200D stays (it joins emoji).
_INVISIBLE_RE = re.compile("[\u00ad\u200b\u200c\u2060\ufeff]")
_TAG_RE = re.compile(r"<[^>]*>")
_SKIPPED_BLOCK_RE = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_LINE_BREAK = "\n"
_PRE_END = "\0pre-end"  # a marker on the walk's stack, never in the output


def html_to_text(html: str) -> str:
    """The readable text of an HTML document or fragment (never raises)."""
    try:
        # The leading line break keeps BeautifulSoup from warning that a short body
        # "looks like a URL or file name" (its check skips markup with one); it is only
        # blank text. catch_warnings would be the obvious way, but it is not thread-safe.
        soup = BeautifulSoup("\n" + html, "html.parser")
    except ParserRejectedMarkup:
        return _last_resort(html)
    return _tidy(_walk(soup))


def _walk(root: Tag) -> list[str]:
    """Text pieces and line breaks of the tree, in document order."""
    out: list[str] = []
    # The stack holds elements to enter and, as plain strings, text to emit on the way out.
    stack: list[PageElement | str] = [root]
    pre_depth = 0
    while stack:
        item = stack.pop()
        if isinstance(item, str) and not isinstance(item, NavigableString):
            if item == _PRE_END:
                pre_depth -= 1
            else:
                out.append(item)
            continue
        if isinstance(item, NavigableString):
            # Comments (Outlook's `<!--[if mso]>`), doctypes, CDATA are subclasses: not text.
            if type(item) is NavigableString:
                if pre_depth:  # no-break blanks survive the line trimming of _tidy
                    out.append(str(item).replace(" ", "\xa0").replace("\t", "\xa0" * 4))
                else:
                    out.append(_BLANKS_RE.sub(" ", str(item)))
            continue
        if not isinstance(item, Tag) or _hidden(item):
            continue
        name = item.name.lower()
        after: list[str] = []
        if name == "br":
            out.append(_LINE_BREAK)
        elif name == "hr":
            out.append("\n----\n")
        elif name == "img":
            alt = _attr(item, "alt").strip()
            if alt:
                out.append(f"[{alt}]")
        elif name == "li":
            out.append("\n- ")
        elif name in _ROWS:
            out.append(_LINE_BREAK)
        elif name in _CELLS:
            out.append(" ")
        elif name in _BLOCKS:
            out.append(_LINE_BREAK)
            after.append(_LINE_BREAK)
        if name == "a":
            link = _shown_link(item)
            if link:
                after.append(f" [{link}]")
        if name == "pre":
            pre_depth += 1
            after.append(_PRE_END)
        stack.extend(reversed(after))
        stack.extend(reversed(item.contents))
    return out


def _hidden(tag: Tag) -> bool:
    if tag.name.lower() in _SKIPPED:
        return True
    return tag.has_attr("hidden") or bool(_HIDDEN_STYLE_RE.search(_attr(tag, "style")))


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(value)


def _shown_link(anchor: Tag) -> str | None:
    """The URL to show after a link's text, unless the text already says it."""
    href = _BLANKS_RE.sub("", _attr(anchor, "href"))
    # javascript:, data: and the like are never shown: they are not for a reader to open.
    if not href.lower().startswith(_SHOWN_SCHEMES):
        return None
    text = _BLANKS_RE.sub(" ", anchor.get_text()).strip()
    bare = href.removeprefix("mailto:").removeprefix("tel:")
    if text in (href, bare, href.rstrip("/")):
        return None
    return href


def _tidy(pieces: list[str]) -> str:
    """Lines trimmed, at most one blank line in a row, no invisible padding."""
    text = _INVISIBLE_RE.sub("", "".join(pieces))
    lines = [line.strip(" \t\r\f\v").replace("\xa0", " ").rstrip() for line in text.split("\n")]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip("\n")


def _last_resort(html: str) -> str:
    """Markup even html.parser rejects: tags and script/style blocks cut out by pattern."""
    text = _TAG_RE.sub(" ", _SKIPPED_BLOCK_RE.sub(" ", html))
    return _tidy([_BLANKS_RE.sub(" ", html_entities.unescape(text))])
