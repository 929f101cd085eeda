"""Untrusted YAML and JSON text to a bounded JSON value, as Kubernetes reads it.

The YAML reader does not use PyYAML's composer or constructor. It walks the
parser's *events* (libyaml through ``CSafeLoader`` when available) with an
explicit stack, keeps its own anchor table, applies merge keys (``<<``)
itself and constructs every scalar itself, so that:

- the document is bounded while it is built, whatever the PyYAML version:
  every value, every character of scalar text and every use of an alias or
  merge source is counted against ``MAX_VALUES`` and ``MAX_TEXT_CHARS``, and
  the clock against ``DEADLINE_SECONDS``; an alias bomb (``*a`` ten times at
  ten levels, or ``<<: [*a, *a, ...]`` nested: 730 MB from 586 bytes with
  PyYAML 6.0.3) stops at the budget with the field path where it ran out;
- nothing recurses on the document's shape (libyaml's parser keeps its own
  stack on the heap), and nesting is refused past ``MAX_DEPTH``;
- scalars end as Kubernetes' decoder (``sigs.k8s.io/yaml``) would take them
  wherever that is safe: a null in a mapping is an unset field (the key is
  dropped, as the Go decoder leaves the zero value); a timestamp stays the
  text it was written as (``2024-02-30`` is the string "2024-02-30", as the
  Go decoder keeps timestamps it reads into ``interface{}``); a YAML 1.1
  sexagesimal number (``22:22``) stays a string, not the integer 1342;
  integers must fit in 64 bits (checked on the digit count before any
  conversion, so a 5000-digit number costs nothing) and floats must be
  finite. ``!!binary``, ``!!set``, ``!!omap`` and custom tags are refused.

Nulls inside lists are kept: validation names their index. A file holding
more than one document is refused at the second one. After the first
problem with the content, the rest of the text is parsed but not built, so
that a syntax error (what to fix first) is the one reported.

The budgets are per document:

- ``MAX_VALUES`` (200,000 values, keys included) is far above any real Pod
  (a few hundred) and bounds the Python objects built to some tens of MB;
- ``MAX_TEXT_CHARS`` (16 Mi characters) lets any file under the file
  source's default 10 MiB limit through when it has no aliases, and bounds
  the text an alias bomb can make to the same order;
- ``MAX_DEPTH`` (64 levels) is about six times a real Pod's deepest field;
- ``DEADLINE_SECONDS`` (5 s of the reading thread's CPU time, so a busy
  machine cannot fail a good file) is a backstop. Within the other budgets a
  document is read in under a second (0.8 s for 10 MB of one-character
  values stopped at 200,000 on a 2-vCPU machine), and the whole pipeline on
  the largest valid Pod takes about 2 s: every later stage (schema, rules,
  defaults, hashing) is linear in what the budgets allow. Hitting the
  deadline means something unforeseen, so it stops at once like the others.

Everything here is synchronous, pure and thread-safe: the file source calls
it from a worker thread.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.resolver import Resolver

from minikubelet.errors import FieldError, ManifestError
from minikubelet.model.schema import echo, field_path

MAX_VALUES: Final = 200_000
MAX_TEXT_CHARS: Final = 16 * 1024 * 1024
MAX_DEPTH: Final = 64
DEADLINE_SECONDS: Final = 5.0
# The clock is read once every this many values, so it costs nothing.
_CLOCK_EVERY: Final = 256

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# 64 binary digits is the longest an int64 can be written in YAML; longer
# digit strings are refused before ``int()`` ever sees them.
_MAX_INT_DIGITS: Final = 64

try:
    _Parser: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = yaml.SafeLoader

_TAG: Final = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (_TAG + t for t in ("str", "null", "bool", "int", "float"))
_TIMESTAMP, _MERGE, _VALUE = (_TAG + t for t in ("timestamp", "merge", "value"))
_MAP, _SEQ = _TAG + "map", _TAG + "seq"
_BOOLS: Final = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_SURROGATE = re.compile("[\ud800-\udfff]")

Path = list[str | int]


class _MergeKey:
    """The ``<<`` key of a mapping (a singleton)."""


_MERGE_KEY: Final = _MergeKey()


def _fail(origin: str, path: Path, message: str) -> ManifestError:
    return ManifestError(origin, [FieldError(field_path(path), message)])


class BudgetError(ManifestError):
    """A document over its budget of values, text or time: reading stops at once."""


class Budget:
    """What one document may cost: values, characters of text, and time."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.values = 0
        self.chars = 0
        self.ticks = 0
        # CPU time of the reading thread, not wall time: a loaded machine
        # (or the GIL held elsewhere) must not make a good file fail.
        self.deadline = time.thread_time() + DEADLINE_SECONDS

    def charge(self, values: int, chars: int, path: Path | Callable[[], Path]) -> None:
        """Count ``values`` and ``chars``; ``path`` says where, should the budget run out.

        ``path`` may be a function, so that the hot path builds no path it will not need.
        """
        before = self.values
        self.values += values
        self.chars += chars
        if self.values > MAX_VALUES:
            raise self._exceeded(
                path,
                f"document expands to more than {MAX_VALUES} values "
                "(each use of an alias or merge key counts in full)",
            )
        if self.chars > MAX_TEXT_CHARS:
            raise self._exceeded(
                path,
                f"document expands to more than {MAX_TEXT_CHARS} characters of text "
                "(each use of an alias or merge key counts in full)",
            )
        if before // _CLOCK_EVERY != self.values // _CLOCK_EVERY and (
            time.thread_time() > self.deadline
        ):
            raise self._exceeded(path, f"document took more than {DEADLINE_SECONDS:g} s to read")

    def tick(self) -> None:
        """One step of work that builds nothing: only the clock is checked."""
        self.ticks += 1
        if self.ticks % _CLOCK_EVERY == 0 and time.thread_time() > self.deadline:
            raise self._exceeded([], f"document took more than {DEADLINE_SECONDS:g} s to read")

    def _exceeded(self, path: Path | Callable[[], Path], message: str) -> BudgetError:
        return BudgetError(self.origin, [FieldError(field_path(_where(path)), message)])


def _where(path: Path | Callable[[], Path]) -> Path:
    return path() if callable(path) else path


def _depth_error(origin: str, path: Path) -> ManifestError:
    return _fail(origin, path, f"nested deeper than {MAX_DEPTH} levels")


# --- scalars ---


def _resolve_plain(value: str) -> str:
    """The tag PyYAML's YAML 1.1 resolver gives a plain scalar (read-only use)."""
    resolvers = Resolver.yaml_implicit_resolvers.get(value[:1], [])
    for tag, regexp in resolvers + Resolver.yaml_implicit_resolvers.get(None, []):
        if regexp.match(value):
            return str(tag)
    return _STR


def _int(text: str) -> int | str | None:
    """A YAML 1.1 integer: the int, the text itself (sexagesimal), or None if out of range."""
    digits = text.replace("_", "")
    sign = -1 if digits[:1] == "-" else 1
    digits = digits.lstrip("+-")
    if ":" in digits:
        return text  # sexagesimal: Kubernetes' decoder reads it as a string
    base = 10
    if digits[:2] in ("0b", "0x"):
        base = 2 if digits[1] == "b" else 16
        digits = digits[2:]
    elif digits[:1] == "0" and len(digits) > 1:
        base = 8
    digits = digits.lstrip("0") or "0"
    if len(digits) > _MAX_INT_DIGITS:
        return None
    value = sign * int(digits, base)
    return value if INT64_MIN <= value <= INT64_MAX else None


def _float(text: str) -> float | int | str | None:
    """A YAML 1.1 float: the number, the text (sexagesimal), or None if not finite."""
    digits = text.replace("_", "").lower()
    if ":" in digits:
        return text
    value = float(digits.replace(".inf", "inf").replace(".nan", "nan"))
    return _number(value)


def _number(value: float) -> float | int | None:
    if not math.isfinite(value):
        return None
    # A whole float is an int, as the Go decoder's JSON step writes 80.0 as 80.
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _scalar_tag(event: yaml.ScalarEvent) -> str:
    tag = event.tag
    if tag is None and event.implicit[0]:
        return _resolve_plain(event.value)
    if tag is None or tag == "!":
        return _STR
    return str(tag)


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


# --- YAML ---


@dataclass(slots=True)
class _Anchored:
    value: Any
    values: int
    chars: int
    height: int


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence being built."""

    path: Path
    is_map: bool
    anchor: str | None
    items: list[Any] = field(default_factory=list)
    # Mappings: explicit keys (a None value means "unset"), merge sources, pending key.
    explicit: dict[str, Any] = field(default_factory=dict)
    merges: list[dict[str, Any]] = field(default_factory=list)
    key: str | _MergeKey | None = None
    # The expanded size of what is inside, for aliases of this node.
    values: int = 1
    chars: int = 0
    height: int = 1

    def child_path(self) -> Path:
        if not self.is_map:
            return [*self.path, len(self.items)]
        if self.key is None:
            return self.path
        return [*self.path, "<<" if isinstance(self.key, _MergeKey) else self.key]


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value read here (far cheaper than ``copy.deepcopy``).

    Recursion is bounded: nothing read here is deeper than ``MAX_DEPTH``.
    """
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


class _YamlReader:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.budget = Budget(origin)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchored] = {}
        self.open_anchors: set[str] = set()

    def path(self) -> Path:
        return self.stack[-1].child_path() if self.stack else []

    def fail(self, message: str, path: Path | None = None) -> ManifestError:
        return _fail(self.origin, self.path() if path is None else path, message)

    def read(self, text: str) -> Any:
        """The one non-null document of ``text``, or None if it has none.

        After the first problem with the content, the rest of the text is
        still parsed (not built), so that a syntax error, which is what to
        fix first, is the one reported. Budget errors stop at once.
        """
        deferred: ManifestError | None = None
        skipped = 0
        documents = 0
        result: Any = None
        root_pending = False
        events: Iterator[yaml.Event] = yaml.parse(text, Loader=_Parser)
        try:
            for event in events:
                if isinstance(event, yaml.DocumentStartEvent):
                    # Anchors do not cross documents.
                    self.anchors.clear()
                    root_pending = True
                    continue
                if root_pending:
                    root_pending = False
                    if not self._is_null(event):
                        documents += 1
                        if documents > 1:
                            raise _fail(
                                self.origin,
                                [],
                                "holds more than one document; put one Pod in each file",
                            )
                if deferred is not None:
                    # Only parsed, for a syntax error to report instead, and
                    # no further than a document could go.
                    skipped += 1
                    self.budget.tick()
                    if skipped > MAX_VALUES:
                        break
                    continue
                try:
                    done = self._event(event)
                except BudgetError:
                    raise
                except ManifestError as e:
                    deferred = e
                    continue
                if done is not None and done[0] is not None:
                    result = done[0]
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        if deferred is not None:
            raise deferred
        return result

    @staticmethod
    def _is_null(event: yaml.Event) -> bool:
        if isinstance(event, yaml.DocumentEndEvent | yaml.StreamEndEvent):
            return True
        return isinstance(event, yaml.ScalarEvent) and _scalar_tag(event) == _NULL

    def _event(self, event: yaml.Event) -> tuple[Any] | None:
        """Feed one event; returns ``(root,)`` when a document's root value is complete."""
        if isinstance(event, yaml.ScalarEvent):
            return self._scalar(event)
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self._start(event)
            return None
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            frame = self.stack.pop()
            value = self._finish(frame)
            if frame.anchor is not None:
                self.open_anchors.discard(frame.anchor)
                self.anchors[frame.anchor] = _Anchored(
                    value, frame.values, frame.chars, frame.height
                )
            return self._complete(value, frame.values, frame.chars, frame.height)
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event)
        return None  # stream and document boundaries

    def _scalar(self, event: yaml.ScalarEvent) -> tuple[Any] | None:
        text: str = event.value
        self.budget.charge(1, len(text), self.path)
        if not self.stack:
            # A document that is one scalar is not an object, whatever the scalar.
            return (None if _scalar_tag(event) == _NULL else text,)
        in_key = self.stack[-1].is_map and self.stack[-1].key is None
        # A problem with a key is named by the key as written.
        where = [*self.stack[-1].path, text or "~"] if in_key else None
        tag = _scalar_tag(event)
        value: Any
        if tag in (_STR, _TIMESTAMP, _VALUE):
            value = text
        elif tag == _MERGE:
            value = _MERGE_KEY if in_key else text
        elif tag == _NULL:
            value = None
        elif tag == _BOOL:
            if text.lower() not in _BOOLS:
                raise self.fail(f"{echo(text)} is not a boolean", where)
            value = _BOOLS[text.lower()]
        elif tag in (_INT, _FLOAT):
            value = self._number(text, tag, where)
        else:
            raise self.fail(f"unsupported YAML tag {echo(_tag_name(tag))}", where)
        if event.anchor is not None and not isinstance(value, _MergeKey):
            self.anchors[event.anchor] = _Anchored(value, 1, len(text), 0)
        if in_key:
            self._key(value, text)
            return None
        return self._complete(value, 1, len(text), 0)

    def _number(self, text: str, tag: str, where: Path | None) -> Any:
        try:
            value = _int(text) if tag == _INT else _float(text)
        except ValueError:
            raise self.fail(
                f"{echo(text)} is not {'an integer' if tag == _INT else 'a number'}", where
            ) from None
        if value is None:
            if tag == _INT:
                raise self.fail("integer out of range: must fit in 64 bits", where)
            raise self.fail("must be a finite number", where)
        return value

    def _key(self, value: Any, text: str) -> None:
        frame = self.stack[-1]
        if isinstance(value, str | _MergeKey):
            frame.key = value
            return
        kind = "null" if value is None else "a boolean" if isinstance(value, bool) else "a number"
        raise self.fail(
            f"mapping keys must be strings: this key is {kind} (quote it)",
            [*frame.path, text or "~"],
        )

    def _start(self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent) -> None:
        is_map = isinstance(event, yaml.MappingStartEvent)
        path = self.path()
        if self.stack and self.stack[-1].is_map and self.stack[-1].key is None:
            raise self.fail("mapping keys must be strings, not mappings or lists")
        tag = event.tag
        if tag not in (None, "!", _MAP if is_map else _SEQ):
            if not self.stack:
                raise self.fail(f"must be a mapping (a Kubernetes object), not {tag}", path)
            raise self.fail(f"unsupported YAML tag {echo(_tag_name(str(tag)))}", path)
        if len(self.stack) >= MAX_DEPTH:
            raise _depth_error(self.origin, path)
        self.budget.charge(1, 0, path)
        if event.anchor is not None:
            # An alias of a node from inside that node would be endless.
            self.open_anchors.add(event.anchor)
            self.anchors.pop(event.anchor, None)
        self.stack.append(_Frame(path=path, is_map=is_map, anchor=event.anchor))

    def _alias(self, event: yaml.AliasEvent) -> tuple[Any] | None:
        name = str(event.anchor)
        if not self.stack:
            # Anchors do not cross documents, so a document cannot be an alias.
            raise self.fail("must be a mapping (a Kubernetes object), not an alias")
        frame = self.stack[-1]
        in_key = frame.is_map and frame.key is None
        path = [*frame.path, f"*{name[:40]}"] if in_key else self.path()
        anchored = self.anchors.get(name)
        if anchored is None:
            what = (
                "refers to a node that contains it" if name in self.open_anchors else "is undefined"
            )
            raise self.fail(f"alias *{name[:40]} {what}", path)
        self.budget.charge(anchored.values, anchored.chars, path)
        if len(self.stack) + anchored.height > MAX_DEPTH:
            raise _depth_error(self.origin, path)
        value = copy_json(anchored.value)
        if in_key:
            if not isinstance(value, str):
                raise self.fail("mapping keys must be strings: this alias is not one", path)
            frame.key = value
            return None
        return self._complete(value, anchored.values, anchored.chars, anchored.height)

    def _complete(self, value: Any, values: int, chars: int, height: int) -> tuple[Any] | None:
        if not self.stack:
            return (value,)
        frame = self.stack[-1]
        frame.values += values
        frame.chars += chars
        frame.height = max(frame.height, height + 1)
        if not frame.is_map:
            frame.items.append(value)
            return None
        key, frame.key = frame.key, None
        if isinstance(key, _MergeKey):
            self._merge(frame, value)
        elif isinstance(key, str):
            frame.explicit[key] = value
        return None

    def _merge(self, frame: _Frame, value: Any) -> None:
        sources = value if isinstance(value, list) else [value]
        for i, source in enumerate(sources):
            if not isinstance(source, dict):
                where = [*frame.path, "<<", i] if isinstance(value, list) else [*frame.path, "<<"]
                raise self.fail("merge key values must be mappings or lists of mappings", where)
            frame.merges.append(source)

    @staticmethod
    def _finish(frame: _Frame) -> Any:
        if not frame.is_map:
            return frame.items
        result: dict[str, Any] = {}
        # Merged keys never override explicit ones; among merge sources the first wins.
        for source in frame.merges:
            for k, v in source.items():
                result.setdefault(k, v)
        for k, v in frame.explicit.items():
            if v is None:
                result.pop(k, None)
            else:
                result[k] = v
        return result


def _yaml_error(origin: str, error: yaml.YAMLError) -> ManifestError:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        problem = error.problem or "invalid YAML"
        return ManifestError(origin, [FieldError("", f"invalid YAML at {where}: {problem}")])
    return ManifestError(origin, [FieldError("", "invalid YAML")])


def load_yaml(text: str, *, origin: str) -> Any:
    """The one document of ``text`` as a JSON value (None if it has none)."""
    try:
        return _YamlReader(origin).read(text)
    except yaml.YAMLError as e:
        raise _yaml_error(origin, e) from None


# --- JSON, and values from elsewhere ---


@dataclass(frozen=True, slots=True)
class _Invalid:
    """A JSON number that cannot be used, reported with its path by ``normalize``."""

    message: str


def _json_int(text: str) -> int | _Invalid:
    if len(text.lstrip("-")) > 19:
        return _Invalid("integer out of range: must fit in 64 bits")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        return _Invalid("integer out of range: must fit in 64 bits")
    return value


def _json_constant(text: str) -> _Invalid:
    return _Invalid("must be a finite number")


def load_json(text: str, *, origin: str) -> Any:
    """A JSON document, bounded and normalised as YAML documents are."""
    try:
        raw = json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as e:
        raise ManifestError(
            origin, [FieldError("", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}")]
        ) from None
    except RecursionError:
        raise ManifestError(
            origin, [FieldError("", f"nested deeper than {MAX_DEPTH} levels")]
        ) from None
    return normalize(raw, origin=origin)


def _leaf(value: object, path: Path, origin: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _fail(origin, path, "integer out of range: must fit in 64 bits")
        return value
    if isinstance(value, float):
        number = _number(value)
        if number is None:
            raise _fail(origin, path, "must be a finite number")
        return number
    if isinstance(value, str):
        if _SURROGATE.search(value) is not None:
            raise _fail(origin, path, "must be valid Unicode text (it holds a lone surrogate)")
        return value
    if isinstance(value, _Invalid):
        raise _fail(origin, path, value.message)
    raise _fail(origin, path, f"unsupported value of type {type(value).__name__}")


def normalize(value: object, *, origin: str) -> Any:
    """A JSON value as the YAML reader makes them, from any Python value.

    Nulls in mappings are dropped, whole floats become ints, and the same
    budgets apply. Iterative, so neither depth nor size can exhaust the stack.
    """
    if not isinstance(value, dict | list | tuple):
        # A document that is one scalar is not an object, whatever the scalar.
        return value
    budget = Budget(origin)

    def start(item: object, path: Path) -> Any:
        budget.charge(1, len(item) if isinstance(item, str) else 0, path)
        if isinstance(item, dict | list | tuple):
            if len(stack) >= MAX_DEPTH:
                raise _depth_error(origin, path)
            out: dict[str, Any] | list[Any] = {} if isinstance(item, dict) else []
            entries = iter(item.items()) if isinstance(item, dict) else enumerate(item)
            stack.append((entries, out, path))
            return out
        return _leaf(item, path, origin)

    stack: list[tuple[Iterator[tuple[Any, Any]], dict[str, Any] | list[Any], Path]] = []
    root = start(value, [])
    while stack:
        entries, out, path = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        key, item = entry
        if isinstance(out, dict):
            if not isinstance(key, str):
                raise _fail(origin, path, "mapping keys must be strings")
            if _SURROGATE.search(key) is not None:
                raise _fail(origin, path, "mapping keys must be valid Unicode text")
            child: Path = [*path, key]
            budget.charge(1, len(key), child)
            converted = start(item, child)
            if converted is not None:
                out[key] = converted
        else:
            out.append(start(item, [*path, key]))
    return root
