"""Kubernetes ``$(VAR)`` expansion (third_party/forked/golang/expansion).

``$(NAME)`` is replaced when NAME is known and kept literally when not;
``$$`` is an escaped ``$``; any other ``$`` is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : close]
                    value = lookup(name)
                    out.append(value if value is not None else f"$({name})")
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def expand_with(text: str, env: Mapping[str, str]) -> str:
    return expand(text, env.get)
