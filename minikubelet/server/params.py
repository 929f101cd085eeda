"""Query parameters of the list and watch requests, parsed as the API server parses them.

Everything here is strict where a mistake would cost the agent (a timeout
that never fires, a number too large for a timer) and lenient only where the
API server itself is.
"""

from __future__ import annotations

import re

from multidict import MultiMapping

from minikubelet.server.errors import StatusError, shown

# The longest watch a client may ask for, in seconds (one day). The API server takes any
# int64; here a watch is a file descriptor, a subscription and a slot among max_watches,
# so it is bounded. timeoutSeconds=0, or none, still means "until the client leaves".
MAX_TIMEOUT_SECONDS = 86_400

# ASCII digits only: str.isdigit() and int() would also take "١٢" or "²".
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def timeout_seconds(query: MultiMapping[str]) -> int | None:
    """``timeoutSeconds``: a whole number of seconds from 0 to ``MAX_TIMEOUT_SECONDS``.

    Like the API server (strconv.ParseInt), the first value counts, and
    fractions, signs, exponents, ``nan`` and ``inf`` are refused.
    """
    values = query.getall("timeoutSeconds", [])
    if not values:
        return None
    raw = values[0]
    # Bounded before int(): a 4,000-digit value would cost CPU for nothing.
    if not _DIGITS.fullmatch(raw) or len(raw.lstrip("0")) > len(str(MAX_TIMEOUT_SECONDS)):
        raise _bad_timeout(raw)
    value = int(raw)
    if value > MAX_TIMEOUT_SECONDS:
        raise _bad_timeout(raw)
    return value


def _bad_timeout(raw: str) -> StatusError:
    return StatusError(
        400,
        f"timeoutSeconds: invalid value {shown(raw)}: must be a whole number of seconds "
        f"from 0 to {MAX_TIMEOUT_SECONDS}",
    )


def flag(raw: str | None) -> bool:
    """A bool parameter as the API server converts it: absent, "0" and "false" are false,
    anything else (even empty, as in ``?watch``) is true."""
    return raw is not None and not (raw == "0" or raw.casefold() == "false")


def is_watch(query: MultiMapping[str]) -> bool:
    values = query.getall("watch", [])
    return flag(values[0] if values else None)


# A limit is a number; bounded in length before anything reads it.
_LIMIT = re.compile(r"[0-9]{1,19}", re.ASCII)


def check_list_options(
    *, limit: str, continue_token: str, initial_events: bool, watch: bool, bookmarks: bool
) -> None:
    """``limit``, ``continue`` and ``sendInitialEvents``, refused where the API server
    refuses them or where this agent cannot honour them."""
    # ``limit`` is taken and ignored: every list is whole and has no ``continue``, which
    # the API conventions allow ("the server may return more"); it must still be a number.
    if limit and not _LIMIT.fullmatch(limit):
        raise StatusError(400, f"limit: invalid value {shown(limit)}: must be a number")
    if continue_token:
        raise StatusError(
            400, "continue: this agent gives no continue tokens; list again without it"
        )
    if initial_events and not (watch and bookmarks):
        # The API server's rule: the end of the initial events is told by a bookmark.
        raise StatusError(
            400,
            "sendInitialEvents: Forbidden: sendInitialEvents is allowed only on a watch "
            "with allowWatchBookmarks=true",
        )
