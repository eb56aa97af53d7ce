"""The spec language: ``jpeg(q=65)``, ``chain(blur(s=2),jpeg(q=50))``, ``none``.

A spec is read into a small syntax tree (:class:`Call`) that the registered kinds turn into objects; the
canonical string is written back by :func:`format_value` and each kind's ``spec``. Names and keys are case
insensitive, whitespace is ignored, and numbers keep their value (``2.0`` and ``2`` are the same ``s=2``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from mirage_bench.errors import ConfigError

Value = Union[int, float, str, "Call"]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)|(?P<punct>[(),=]))"
)
GRAMMAR = "name, or name(arg,...), or name(key=value,...); e.g. jpeg(q=65) or chain(blur(s=2),jpeg(q=50))"


@dataclass(frozen=True)
class Call:
    """``name(args..., key=value...)``: positional values and keyword values, in the order written."""

    name: str
    args: tuple[Value, ...] = ()
    kwargs: tuple[tuple[str, Value], ...] = field(default_factory=tuple)


def format_value(value: int | float | str) -> str:
    """Canonical text of one argument value: integral floats lose their ``.0``, floats keep full precision."""
    if isinstance(value, bool):
        raise TypeError(f"spec values are numbers or names, got the boolean {value!r}")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def read(text: str) -> Call:
    """Parse one spec string into a :class:`Call` tree; syntax errors name the position and the grammar."""
    tokens = _tokenize(text)
    call, pos = _call(tokens, 0, text)
    if pos != len(tokens):
        _fail(text, f"unexpected {tokens[pos][1]!r} after the end of {call.name}(...)")
    return call


def _tokenize(text: str) -> list[tuple[str, str]]:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a degradation spec must be a non-empty string, got {text!r}. Expected {GRAMMAR}.")
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            _fail(text, f"unexpected character {text[pos:].lstrip()[0]!r} at position {pos}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _call(tokens: list[tuple[str, str]], pos: int, text: str) -> tuple[Call, int]:
    if pos >= len(tokens) or tokens[pos][0] != "name":
        _fail(text, "expected a degradation name")
    name = tokens[pos][1].lower()
    pos += 1
    if pos >= len(tokens) or tokens[pos][1] != "(":
        return Call(name), pos
    pos += 1
    args: list[Value] = []
    kwargs: list[tuple[str, Value]] = []
    if pos < len(tokens) and tokens[pos][1] == ")":
        return Call(name), pos + 1
    while True:
        if pos + 1 < len(tokens) and tokens[pos][0] == "name" and tokens[pos + 1][1] == "=":
            key = tokens[pos][1].lower()
            value, pos = _value(tokens, pos + 2, text)
            kwargs.append((key, value))
        else:
            if kwargs:
                _fail(text, f"positional argument after keyword arguments in {name}(...)")
            value, pos = _value(tokens, pos, text)
            args.append(value)
        if pos >= len(tokens):
            _fail(text, f"missing ')' to close {name}(")
        if tokens[pos][1] == ")":
            return Call(name, tuple(args), tuple(kwargs)), pos + 1
        if tokens[pos][1] != ",":
            _fail(text, f"expected ',' or ')' in {name}(...), found {tokens[pos][1]!r}")
        pos += 1


def _value(tokens: list[tuple[str, str]], pos: int, text: str) -> tuple[Value, int]:
    if pos >= len(tokens):
        _fail(text, "the spec ends where a value was expected")
    kind, raw = tokens[pos]
    if kind == "num":
        is_float = any(ch in raw for ch in ".eE")
        return (float(raw) if is_float else int(raw)), pos + 1
    if kind == "name":
        if pos + 1 < len(tokens) and tokens[pos + 1][1] == "(":
            return _call(tokens, pos, text)
        return raw.lower(), pos + 1
    _fail(text, f"expected a value, found {raw!r}")


def _fail(text: str, problem: str):
    raise ConfigError(f"cannot read degradation spec {text!r}: {problem}. Expected {GRAMMAR}.")
