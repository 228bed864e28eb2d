"""Reading ``yadtq shell`` lines: a line into tokens, tokens into task arguments.
What the shell prints is ``shell_views.py``'s; the command loop is ``shell.py``'s."""

from __future__ import annotations

import re
from typing import Any, Optional

from .calls import parse_arg

_KEYWORD = re.compile(r"([A-Za-z_]\w*)=(.*)", re.DOTALL)
_CLOSING = {"[": "]", "{": "}", "(": ")"}


def split_line(line: str) -> list[str]:
    """Split a line at whitespace outside quotes and brackets; tokens keep their quotes.

    ``add [1, 2] "a b" x={"k": 1}`` -> ``["add", "[1, 2]", '"a b"', 'x={"k": 1}']``. A quote
    opens a string only at the start of a token, after ``=`` or inside brackets, so
    ``greet bob's`` is two plain words.

    Raises:
        ValueError: an unterminated string or unbalanced bracket.
    """
    tokens: list[str] = []
    current: list[str] = []
    expected: list[str] = []  # closing brackets still owed, innermost last
    quote: Optional[str] = None
    escaped = False
    for char in line:
        if quote is not None:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char.isspace() and not expected:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        if char in "\"'" and (not current or expected or current[-1] == "="):
            quote = char
        elif char in _CLOSING:
            expected.append(_CLOSING[char])
        elif char in ")]}" and (not expected or expected.pop() != char):
            raise ValueError(f"unbalanced {char!r}")
        current.append(char)
    if quote is not None:
        raise ValueError(f"unterminated string (missing {quote})")
    if expected:
        raise ValueError(f"unclosed bracket (missing {expected[-1]!r})")
    if current:
        tokens.append("".join(current))
    return tokens


def parse_arguments(tokens: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Task arguments from tokens: ``NAME=VALUE`` is a keyword argument, anything else positional.

    Values are read as ``yadtq submit`` reads them (:func:`yadtq.cli.calls.parse_arg`): JSON,
    else a Python literal, else the text itself. Quote a positional ``"a=b"`` to send it as a string.

    Raises:
        ValueError: a positional argument after a keyword argument, or a repeated keyword.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for token in tokens:
        match = _KEYWORD.fullmatch(token)
        if match is not None:
            if match[1] in kwargs:
                raise ValueError(f"keyword argument {match[1]} given twice")
            kwargs[match[1]] = parse_arg(match[2])
        elif kwargs:
            raise ValueError(f"positional argument {token} follows keyword arguments")
        else:
            args.append(parse_arg(token))
    return tuple(args), kwargs
