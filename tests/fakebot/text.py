"""Telegram's text rules in the fake Bot API: parse_mode rendering, UTF-16 offsets, commands."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tests.fakebot.records import JSON

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------------------------------
# Telegram's text rules: parse_mode rendering, UTF-16 offsets and command entities
# ---------------------------------------------------------------------------------------------

_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>")
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);")
_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")
_MD2_ALWAYS_ESCAPED = set("#+-={}.!")


class ParseError(ValueError):
    """The text cannot be parsed with the given parse_mode (Telegram answers 400)."""


def utf16_len(text: str) -> int:
    """Length of text in UTF-16 code units, the unit Telegram uses for entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[JSON]:
    """bot_command entities Telegram attaches to every /command in a user's text."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in _COMMAND.finditer(text)
    ]


def _unescape(chunk: str) -> str:
    """Replace the HTML entities Telegram supports; leave any other '&' as it is."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("#x"):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
        return _NAMED_ENTITIES.get(name, match.group())

    return _ENTITY.sub(replace, chunk)


def _html_entity(tag: str, attrs: str, offset: int, length: int) -> JSON | None:
    """The MessageEntity for one closed HTML tag, or None when it is empty."""
    if length == 0:
        return None
    entity: JSON = {"type": _HTML_ENTITY_TYPES[tag], "offset": offset, "length": length}
    if tag == "a":
        href = _HREF.search(attrs)
        entity["url"] = next((g for g in href.groups() if g), "") if href else ""
    if tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def render_html(text: str) -> tuple[str, list[JSON]]:
    """Strip Telegram HTML into (plain text, entities); raise ParseError like the Bot API."""
    plain: list[str] = []
    entities: list[JSON] = []
    stack: list[tuple[str, str, int]] = []
    position = 0
    offset = 0
    while position < len(text):
        start = text.find("<", position)
        chunk = text[position:] if start < 0 else text[position:start]
        plain.append(_unescape(chunk))
        offset += utf16_len(plain[-1])
        if start < 0:
            break
        byte_offset = len(text[:start].encode())
        match = _TAG.match(text, start)
        if not match:
            name = re.match(r"</?([^\s>]*)", text[start:])
            raise ParseError(
                f'Unsupported start tag "{name.group(1) if name else ""}" '
                f"at byte offset {byte_offset}"
            )
        closing, tag, attrs = match.group(1) == "/", match.group(2).lower(), match.group(3)
        if tag not in _HTML_ENTITY_TYPES:
            raise ParseError(f'Unsupported start tag "{tag}" at byte offset {byte_offset}')
        if not closing:
            stack.append((tag, attrs, offset))
        elif not stack or stack[-1][0] != tag:
            expected = f'"</{stack[-1][0]}>"' if stack else "no end tag"
            raise ParseError(
                f"Unmatched end tag at byte offset {byte_offset}, "
                f'expected {expected}, found "</{tag}>"'
            )
        else:
            open_tag, open_attrs, open_offset = stack.pop()
            entity = _html_entity(open_tag, open_attrs, open_offset, offset - open_offset)
            if entity:
                entities.append(entity)
        position = match.end()
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(plain), entities


def _check_markdown_v2(text: str) -> None:
    """Reject MarkdownV2 text with an unescaped character that is always reserved."""
    in_code = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "`":
            in_code = not in_code
        elif char in _MD2_ALWAYS_ESCAPED and not in_code:
            raise ParseError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )


def render_markdown_v2(text: str) -> str:
    """Plain text of a MarkdownV2 message (formatting dropped, no entities)."""
    _check_markdown_v2(text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(?<!\\)(\|\||[*_~`])", "", text)
    return re.sub(r"\\(.)", r"\1", text)


_LEGACY_MARKS = {"*": "bold", "_": "italic", "`": "code"}
_LEGACY_LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def render_markdown(text: str) -> tuple[str, list[JSON]]:
    """Legacy Markdown into (plain text, entities); an unclosed * _ ` is a 400 like Telegram's."""
    plain: list[str] = []
    entities: list[JSON] = []
    position = 0
    while position < len(text):
        char = text[position]
        link = _LEGACY_LINK.match(text, position) if char == "[" else None
        if char == "\\" and text[position + 1 : position + 2] in ("*", "_", "`", "["):
            plain.append(text[position + 1])
            position += 2
        elif link:
            offset = utf16_len("".join(plain))
            plain.append(link.group(1))
            entity = {"type": "text_link", "offset": offset, "length": utf16_len(link.group(1))}
            entities.append({**entity, "url": link.group(2)})
            position = link.end()
        elif char in _LEGACY_MARKS:
            mark = "```" if text.startswith("```", position) else char
            end = text.find(mark, position + len(mark))
            if end < 0:
                byte_offset = len(text[:position].encode())
                raise ParseError(
                    f"Can't find end of the entity starting at byte offset {byte_offset}"
                )
            inner = text[position + len(mark) : end]
            kind = "pre" if mark == "```" else _LEGACY_MARKS[char]
            offset = utf16_len("".join(plain))
            if inner:
                entities.append({"type": kind, "offset": offset, "length": utf16_len(inner)})
            plain.append(inner)
            position = end + len(mark)
        else:
            plain.append(char)
            position += 1
    return "".join(plain), entities


def render(text: str, parse_mode: str | None) -> tuple[str, list[JSON] | None]:
    """What the phone shows for text sent with parse_mode: (plain text, entities or None)."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        plain, entities = render_html(text)
        return plain, entities or None
    if mode == "markdown":
        plain, entities = render_markdown(text)
        return plain, entities or None
    if mode == "markdownv2":
        return render_markdown_v2(text), None
    return text, None
