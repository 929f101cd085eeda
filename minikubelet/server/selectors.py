"""Label and field selectors, parsed and matched as apimachinery does.

Both are parsed once per request into requirements and matched against the
API object (the dict a client would receive), so a selector that works here
works against a cluster, and the other way round. Every refusal is a 400
``Status`` worded like the API server's.

- Field selectors (``fields.ParseSelector``): ``f=v``, ``f==v``, ``f!=v``
  separated by unescaped commas; ``\\,``, ``\\=`` and ``\\\\`` escape. Which
  fields a resource takes is a table the caller passes (the API server's field
  label conversions), each naming where the field lives in the object.
- Label selectors (``labels.Parse``): ``k``, ``!k``, ``k=v``, ``k==v``,
  ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k>n``, ``k<n``; keys are
  qualified names, values label values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minikubelet.server.errors import StatusError, shown

# Where each selectable field lives in the object: a path of keys.
FieldTable = Mapping[str, tuple[str, ...]]

# Checked in this order at each position, as apimachinery does: "==" before "=" so that
# "a==b" does not read as the value "=b".
_OPERATORS = ("!=", "==", "=")


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """One term of a field selector: ``field`` equals (or, ``negated``, differs from) ``value``."""

    field: str
    value: str
    negated: bool = False

    def matches(self, obj: Mapping[str, Any], fields: FieldTable) -> bool:
        return (field_value(obj, fields[self.field]) == self.value) != self.negated


def field_value(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    """The field as the API server's field set renders it: strings as they are, booleans
    as ``true``/``false``, anything absent as ``""``."""
    value: Any = obj
    for key in path:
        value = value.get(key, "") if isinstance(value, Mapping) else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else ""


def parse_field_selector(text: str, fields: FieldTable) -> list[FieldRequirement]:
    """Terms separated by unescaped commas, each ``field=value``, ``field==value`` or
    ``field!=value``; in a value, ``\\,``, ``\\=`` and ``\\\\`` stand for the character.

    Raises StatusError (400) naming what is wrong, as the API server refuses it.
    """
    requirements = []
    for term in _split_terms(text):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise StatusError(
                400, f"invalid selector: {shown(text)}; can't understand {shown(term)}"
            )
        field, operator, raw = split
        if field not in fields:
            raise StatusError(400, f"field label not supported: {shown(field)}")
        requirements.append(FieldRequirement(field, _unescape(raw), negated=operator == "!="))
    return requirements


def _split_terms(text: str) -> list[str]:
    # An escaped comma belongs to its value; the backslash stays for _unescape to read.
    terms = []
    start = 0
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # A field name has no escapes, so the first operator anywhere is the split.
    for i in range(len(term)):
        for operator in _OPERATORS:
            if term.startswith(operator, i):
                return term[:i], operator, term[i + len(operator) :]
    return None


def _unescape(raw: str) -> str:
    value: list[str] = []
    escaped = False
    for char in raw:
        if escaped:
            if char not in "\\,=":
                raise _bad_escape("\\" + char)
            value.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise StatusError(
                400, f"invalid field selector: unescaped character in value: {shown(char)}"
            )
        else:
            value.append(char)
    if escaped:
        raise _bad_escape("\\")
    return "".join(value)


def _bad_escape(sequence: str) -> StatusError:
    return StatusError(400, f"invalid field selector: invalid escape sequence: {shown(sequence)}")


# --- label selectors -------------------------------------------------------------------

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"({_PREFIX}/)?{_NAME}", re.ASCII)
_VALUE = re.compile(rf"({_NAME})?", re.ASCII)
# Tokens of labels.Parse's lexer: identifiers run up to a space or one of these.
_SPECIAL = "!=<>(),"
_INT = re.compile(r"-?[0-9]{1,18}", re.ASCII)


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str
    # "exists", "!", "=", "!=", "in", "notin", "gt", "lt"
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        match self.operator:
            case "exists":
                return present
            case "!":
                return not present
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "gt" | "lt":
                if not present or not _INT.fullmatch(value):
                    return False
                bound = int(self.values[0])
                return int(value) > bound if self.operator == "gt" else int(value) < bound
        return False


def matches_labels(requirements: list[LabelRequirement], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in requirements)


def _lex(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif text.startswith(("==", "!=", "<=", ">="), i):
            tokens.append(text[i : i + 2])
            i += 2
        elif char in _SPECIAL:
            tokens.append(char)
            i += 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def parse_label_selector(text: str) -> list[LabelRequirement]:
    """``labels.Parse``: requirements separated by commas, all of which must hold."""
    tokens = _lex(text)
    out: list[LabelRequirement] = []
    pos = 0

    def bad(why: str) -> StatusError:
        return StatusError(400, f"unable to parse requirement: {why}")

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise bad(f"found '', expected more in {shown(text)}")
        pos += 1
        return tokens[pos - 1]

    def key(token: str) -> str:
        if len(token) > 317 or not _KEY.fullmatch(token) or len(token.rpartition("/")[2]) > 63:
            raise bad(f"invalid label key {shown(token)}: must be a qualified name")
        return token

    def value(token: str) -> str:
        if len(token) > 63 or not _VALUE.fullmatch(token):
            raise bad(f"invalid label value {shown(token)}: must be a valid label value")
        return token

    while pos < len(tokens):
        token = take()
        if token == "!":
            out.append(LabelRequirement(key(take()), "!"))
        else:
            name = key(token)
            if pos >= len(tokens) or tokens[pos] == ",":
                out.append(LabelRequirement(name, "exists"))
            else:
                op = take()
                if op in ("=", "==", "!="):
                    nxt = tokens[pos] if pos < len(tokens) else ","
                    literal = "" if nxt == "," else value(take())
                    out.append(LabelRequirement(name, "!=" if op == "!=" else "=", (literal,)))
                elif op in ("in", "notin"):
                    if take() != "(":
                        raise bad(f"found {shown(tokens[pos - 1])}, expected: '('")
                    values: list[str] = []
                    while True:
                        item = take()
                        if item == ")":
                            break
                        if item == ",":
                            if not values or tokens[pos - 2] == ",":
                                values.append("")
                            continue
                        values.append(value(item))
                    out.append(LabelRequirement(name, op, tuple(values) or ("",)))
                elif op in (">", "<"):
                    bound = take()
                    if not _INT.fullmatch(bound):
                        raise bad("for 'gt', 'lt' operators, the value must be an integer")
                    out.append(LabelRequirement(name, "gt" if op == ">" else "lt", (bound,)))
                else:
                    raise bad(f"found {shown(op)}, expected: in, notin, =, ==, !=, gt, lt")
        if pos < len(tokens):
            if tokens[pos] != ",":
                raise bad(f"found {shown(tokens[pos])}, expected: ','")
            pos += 1
            if pos >= len(tokens):
                raise bad("found '', expected: identifier after ','")
    return out
