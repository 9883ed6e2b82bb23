"""Model cards: a Hugging Face style ``README.md`` with a flat YAML header.

A card is markdown that starts with a header between ``---`` lines, as on the Hugging Face
hub. zoo writes (:func:`render`) and reads back (:func:`parse`) only a flat subset of YAML:
each line is ``key: value`` where the value is a scalar (plain, ``'single'`` or ``"double"``
quoted) or a list of scalars (``[a, "b"]``, or ``- item`` lines below an empty ``key:``).
Every value reads back as text; zoo writes every string double-quoted, so any YAML parser reads
the same strings. Nested mappings, block scalars (``|``, ``>``), anchors, aliases and tags are
refused with one line naming the line. Reading is bounded (:data:`MAX_CARD_BYTES`, at most
:data:`MAX_KEYS` keys, :data:`MAX_ITEMS` items per list, :data:`MAX_VALUE` characters a value).

A card says what zoo cannot derive from the weights: the license and intended use
(:data:`REQUIRED`), the evaluation protocol and limitations. :func:`read_fields` reads those
from a card file a user gives (a card, or just the flat ``key: value`` lines). This module does
not import torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

__all__ = [
    "MAX_CARD_BYTES",
    "MAX_ITEMS",
    "MAX_KEYS",
    "MAX_VALUE",
    "REQUIRED",
    "USER_FIELDS",
    "CardError",
    "compose",
    "missing",
    "parse",
    "parse_fields",
    "quote",
    "read_card",
    "read_fields",
    "render",
]

MAX_CARD_BYTES = 1 << 20  # a card is a page of text
MAX_KEYS = 200
MAX_ITEMS = 1000
MAX_VALUE = 20_000  # characters of one scalar
#: The fields a card must have: publish refuses a card without them.
REQUIRED = ("license", "intended_use")
#: Fields a user supplies (``--card FILE`` or flags) because zoo cannot derive them.
USER_FIELDS = ("license", "intended_use", "evaluation", "limitations")
_SHOWN = 4000  # characters of a transform a card shows (the weights hold all of it)
_SHOWN_CLASSES = 1000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "0": "\0",
            "b": "\b", "f": "\f", "e": "\x1b", " ": " ", "N": "\x85", "_": "\xa0"}  # fmt: skip
_HEX = {"x": 2, "u": 4, "U": 8}

Value = str | list[str]


class CardError(UsageError):
    """A card that is not the flat subset zoo reads (a one-line reason naming the line)."""


# ---------------------------------------------------------------- writing


def _printable(ch: str) -> bool:
    """Whether YAML lets ``ch`` stand as itself inside a double-quoted scalar."""
    code = ord(ch)
    if 0x20 <= code <= 0x7E:
        return True
    return code >= 0xA0 and not (0xD800 <= code <= 0xDFFF) and code not in (
        0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF,
    )  # fmt: skip


def quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (and a JSON-compatible one for ASCII)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def render(fields: Mapping[str, Any], body: str) -> str:
    """A card: ``fields`` as a flat header (``None`` and empty values left out; numbers and
    other scalars written as quoted text), then ``body``."""
    lines = ["---"]
    for key, value in fields.items():
        if not _KEY.match(key):
            raise CardError(f"card field name {key!r} is not a plain key")
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list | tuple):
            lines.append(f"{key}:")
            lines.extend(f"- {quote(str(v))}" for v in value)
        elif isinstance(value, Mapping):
            raise CardError(f"card field {key!r} must be text or a list of text, not a mapping")
        else:
            lines.append(f"{key}: {quote(str(value))}")
    lines.append("---")
    return "\n".join(lines) + "\n\n" + body.strip() + "\n"


# ---------------------------------------------------------------- reading


def parse(text: str, where: str = "card") -> tuple[dict[str, Value], str]:
    """``(header fields, body)`` of a card; a text with no ``---`` header has no fields.

    Raises:
        CardError: one line naming ``where`` and the line for anything outside the subset.
    """
    if len(text) > MAX_CARD_BYTES:
        raise CardError(f"{where} is larger than the {MAX_CARD_BYTES:,}-byte card limit")
    lines = text.split("\n")
    if not lines or lines[0].rstrip("\r").rstrip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].rstrip("\r").rstrip() in ("---", "..."):
            break
    else:
        raise CardError(f"{where}: the header opened by '---' on line 1 is never closed")
    fields = parse_fields(lines[1:end], where, first_line=2)
    return fields, "\n".join(lines[end + 1 :]).lstrip("\n")


def parse_fields(lines: list[str], where: str, first_line: int = 1) -> dict[str, Value]:
    """The flat ``key: value`` lines of a header (see the module doc)."""
    fields: dict[str, Value] = {}
    current: list[str] | None = None  # the block list being read
    for number, raw in enumerate(lines, first_line):
        line = raw.rstrip("\r")

        def bad(why: str, line_no: int = number) -> CardError:
            return CardError(f"{where} line {line_no}: {why}")

        if "\t" in line[: len(line) - len(line.lstrip(" \t"))]:
            raise bad("tabs cannot indent YAML")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("- ") or stripped == "-":
            if current is None:
                raise bad("a list item with no 'key:' above it")
            if len(current) >= MAX_ITEMS:
                raise bad(f"more than {MAX_ITEMS} items in one list")
            current.append(_scalar(stripped[1:].strip(), bad))
            continue
        if line[0] in " \t":
            raise bad("nested values are not read (zoo reads a flat header: key: value)")
        key, colon, rest = line.partition(":")
        key = key.strip()
        if not colon or not _KEY.match(key) or (rest and rest[0] not in " \t"):
            raise bad("expected 'key: value'")
        if key in fields:
            raise bad(f"{key!r} is given twice")
        if len(fields) >= MAX_KEYS:
            raise bad(f"more than {MAX_KEYS} fields")
        value = _strip_comment(rest.strip())
        if not value:
            current = []
            fields[key] = current
            continue
        current = None
        if value.startswith("["):
            fields[key] = _flow_list(value, bad)
        else:
            fields[key] = _scalar(value, bad)
    return fields


def _strip_comment(value: str) -> str:
    """A plain value without its `` #`` comment (quoted and flow values keep theirs)."""
    if value[:1] in ("'", '"', "["):
        return value
    cut = value.find(" #")
    return value[:cut].rstrip() if cut >= 0 else value


def _scalar(value: str, bad: Any) -> str:
    """One scalar as text: double-quoted (YAML escapes), single-quoted, or plain."""
    if value.startswith('"'):
        text, end = _double(value, 0, bad)
        _trailing(value[end:], bad)
        return text
    if value.startswith("'"):
        text, end = _single(value, 0, bad)
        _trailing(value[end:], bad)
        return text
    return _plain(_strip_comment(value), bad)


def _plain(value: str, bad: Any) -> str:
    if value[:1] in ("&", "*", "!", "|", ">", "{", "[", "@", "`", "%"):
        raise bad(f"{value[:1]!r} values are not read (zoo reads plain text, quoted text, lists)")
    if ": " in value or value.endswith(":"):
        raise bad("nested values are not read (zoo reads a flat header: key: value)")
    if len(value) > MAX_VALUE:
        raise bad(f"a value longer than {MAX_VALUE:,} characters")
    return value


def _trailing(rest: str, bad: Any) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise bad(f"unexpected text after a quoted value: {rest[:20]!r}")


def _double(text: str, start: int, bad: Any) -> tuple[str, int]:
    """A double-quoted scalar starting at ``text[start]``; ``(value, index after it)``."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return _limited("".join(out), bad), i + 1
        if ch == "\\":
            code = text[i + 1 : i + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                i += 2
                continue
            if code in _HEX:
                digits = text[i + 2 : i + 2 + _HEX[code]]
                if len(digits) != _HEX[code] or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                    raise bad(f"bad escape \\{code}{digits}")
                point = int(digits, 16)
                if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                    raise bad(f"bad escape \\{code}{digits}")
                out.append(chr(point))
                i += 2 + _HEX[code]
                continue
            raise bad(f"unknown escape \\{code}")
        out.append(ch)
        i += 1
    raise bad("a double-quoted value is not closed on its line")


def _single(text: str, start: int, bad: Any) -> tuple[str, int]:
    """A single-quoted scalar (``''`` is a quote) starting at ``text[start]``."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return _limited("".join(out), bad), i + 1
        out.append(text[i])
        i += 1
    raise bad("a single-quoted value is not closed on its line")


def _flow_list(value: str, bad: Any) -> list[str]:
    """``[a, "b", 'c']`` on one line: a list of scalars."""
    items: list[str] = []
    i = 1
    while True:
        while i < len(value) and value[i] == " ":
            i += 1
        if i >= len(value):
            raise bad("a '[' list is not closed on its line")
        if value[i] == "]" and not items:
            i += 1
            break
        if value[i] == '"':
            item, i = _double(value, i, bad)
        elif value[i] == "'":
            item, i = _single(value, i, bad)
        else:
            end = i
            while end < len(value) and value[end] not in ",]":
                end += 1
            item, i = _plain(value[i:end].strip(), bad), end
            if not item:
                raise bad("an empty item in a '[' list")
        items.append(item)
        if len(items) > MAX_ITEMS:
            raise bad(f"more than {MAX_ITEMS} items in one list")
        while i < len(value) and value[i] == " ":
            i += 1
        if value[i : i + 1] == ",":
            i += 1
            continue
        if value[i : i + 1] == "]":
            i += 1
            break
        if i >= len(value):
            raise bad("a '[' list is not closed on its line")
        raise bad("expected ',' or ']' in a '[' list")
    _trailing(value[i:], bad)
    return items


def _limited(text: str, bad: Any) -> str:
    if len(text) > MAX_VALUE:
        raise bad(f"a value longer than {MAX_VALUE:,} characters")
    return text


# ---------------------------------------------------------------- files


def read_card(path: str | os.PathLike, what: str = "model card") -> tuple[dict[str, Value], str]:
    """``(fields, body)`` of a card file, read within :data:`MAX_CARD_BYTES` (UTF-8)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"no such {what}: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CARD_BYTES:
        raise CardError(f"{what} {path} is larger than the {MAX_CARD_BYTES:,}-byte card limit")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CardError(f"{what} {path} is not UTF-8 text ({exc.reason})") from None
    return parse(text, f"{what} {path}")


def read_fields(path: str | os.PathLike) -> tuple[dict[str, Value], str]:
    """What a user's ``--card FILE`` says: a card (header and body), or a flat file of
    ``key: value`` lines (no body)."""
    path = Path(path)
    fields, body = read_card(path, "card file")
    if fields or body.lstrip().startswith("---"):
        return fields, body
    lines = body.split("\n")
    return parse_fields(lines, f"card file {path}"), ""


def missing(fields: Mapping[str, Any]) -> list[str]:
    """The :data:`REQUIRED` fields ``fields`` lacks (or has empty)."""
    return [k for k in REQUIRED if not (isinstance(fields.get(k), str) and fields[k].strip())]


# ---------------------------------------------------------------- composing


def compose(
    name: str,
    facts: Mapping[str, Any],
    user: Mapping[str, Value],
    user_body: str = "",
) -> tuple[dict[str, Value], str]:
    """The header fields and body of entry ``name``'s card.

    Args:
        name: the entry (``mlp.circles``).
        facts: what zoo knows: ``model`` (``plugin/name``), ``kwargs``, ``dataset``,
            ``metrics``, ``recipe`` (its path in the registry), ``settings`` (the run's),
            ``transform``, ``classes``, ``summary``, ``created``, ``zoo_version``.
        user: what the user gave (``--card FILE`` and flags): :data:`USER_FIELDS` and any
            other flat field, which goes into the header as given.
        user_body: the body of the user's card, kept below zoo's sections.
    """
    metrics = dict(facts.get("metrics") or {})
    dataset = facts.get("dataset")
    evaluation = user.get("evaluation") or (
        f"{', '.join(sorted(metrics))} on the test split of the {dataset} dataset, as zoo "
        "recorded them when the weights were trained and exported"
        if dataset and metrics
        else None
    )
    fields: dict[str, Value] = {
        "license": user.get("license") or "",
        "library_name": "zoo",
        "tags": ["zoo", *[t for t in (facts.get("model"), dataset) if t]],
        "datasets": [dataset] if dataset else [],
        "metrics": sorted(metrics),
        "model": facts.get("model") or "",
        "zoo_entry": name,
        "recipe": facts.get("recipe") or "",
        "intended_use": user.get("intended_use") or "",
        "evaluation": evaluation or "",
        "limitations": user.get("limitations") or "",
    }
    for key, value in user.items():
        if key not in fields:
            fields[key] = value
    fields = {k: v for k, v in fields.items() if v not in ("", [], None)}
    return fields, _body(name, facts, fields, metrics, user_body)


def _body(
    name: str, facts: Mapping[str, Any], fields: Mapping[str, Value], metrics: dict, extra: str
) -> str:
    import json

    out = [f"# {name}", ""]
    if facts.get("summary"):
        out += [str(facts["summary"]), ""]
    out += ["## Model", "", f"- model: `{facts.get('model')}`"]
    if facts.get("kwargs"):
        out.append(f"- kwargs: `{json.dumps(facts['kwargs'], sort_keys=True)}`")
    bare, tag = str(facts.get("model")).rpartition("/")[2], name.partition(".")[2]
    out.append(
        f"- load: `{facts.get('load') or f'zoo.create_model({bare!r}, pretrained={tag!r})'}`"
    )
    out += ["", "## Intended use", "", str(fields.get("intended_use", "Not stated.")), ""]
    out += ["## Training", ""]
    if facts.get("dataset"):
        out.append(f"- dataset: `{facts['dataset']}`")
    if facts.get("recipe"):
        out.append(f"- recipe: `{facts['recipe']}`")
    settings = facts.get("settings") or {}
    shown = {k: v for k, v in settings.items() if isinstance(v, str | int | float | bool)}
    for key in sorted(shown):
        out.append(f"- {key}: `{json.dumps(shown[key])}`")
    if facts.get("created"):
        out.append(f"- created: {facts['created']}")
    out += ["", "## Evaluation", "", str(fields.get("evaluation", "Not stated.")), ""]
    if metrics:
        out += ["| metric | value |", "| --- | --- |"]
        out += [f"| {k} | {float(v):.6g} |" for k, v in sorted(metrics.items())]
        out.append("")
    if facts.get("transform"):
        text = json.dumps(facts["transform"], sort_keys=True)
        shown = f"```json\n{text}\n```" if len(text) <= _SHOWN else "(in the weights' metadata)"
        out += ["## Preprocessing", "", "Applied to raw inputs by `zoo predict` and "
                "`zoo.transforms(...)`:", "", shown, ""]  # fmt: skip
    classes = list(facts.get("classes") or [])
    if classes:
        text = ", ".join(f"{i}: {c}" for i, c in enumerate(classes[:_SHOWN_CLASSES]))
        more = f" and {len(classes) - _SHOWN_CLASSES} more" if len(classes) > _SHOWN_CLASSES else ""
        out += ["## Labels", "", text + more, ""]
    out += ["## Limitations", "", str(fields.get("limitations", "Not stated.")), ""]
    if extra.strip():
        out += [extra.strip(), ""]
    return "\n".join(out)
