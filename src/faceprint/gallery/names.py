"""What a person may be called, and what metadata a person may carry: checked by every
gallery backend before anything is stored, and by the service before a request reaches one.

A name is NFC-normalised (so the composed and decomposed spellings of "José" are one
person) and stripped; it must be 1 to :data:`MAX_NAME_CHARS` characters, must not be ``.``
or ``..`` or contain ``/`` (such a name could not be addressed as one URL path segment,
``/v1/people/{name}``), and must not contain control, format (zero-width, bidi override),
surrogate, private-use or unassigned characters, which display as nothing or reorder the text
around them. :func:`lookup_name` applies only the normalisation, so a name stored before these
rules existed can still be found, renamed or deleted.

Metadata is a JSON object of at most :data:`MAX_METADATA_DEPTH` nested levels and
:data:`MAX_METADATA_BYTES` bytes once serialised, with finite numbers only (NaN and
infinity are not JSON).
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

from ..errors import ConfigError

#: Longest accepted name, in characters (after normalisation).
MAX_NAME_CHARS = 200
#: Deepest accepted metadata nesting (the object itself is level 1).
MAX_METADATA_DEPTH = 16
#: Largest accepted metadata, serialised as compact JSON.
MAX_METADATA_BYTES = 16 * 1024

#: Unicode general categories refused in names: control, format (zero-width, bidi controls),
#: surrogate, private use, unassigned; line and paragraph separators.
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def lookup_name(name: Any) -> str:
    """The form a name is stored under (NFC, stripped), for looking one up; refuses nothing
    but non-strings."""
    if not isinstance(name, str):
        raise ConfigError(f"a person's name must be a string, got {type(name).__name__}")
    return unicodedata.normalize("NFC", name).strip()


def check_name(name: Any) -> str:
    """``name`` as it is stored (NFC, stripped).

    Raises:
        ConfigError: empty, too long, ``.``/``..``, containing ``/`` or a refused character;
            the message names the first offending character by code point.
    """
    out = lookup_name(name)
    if not out:
        raise ConfigError(f"a person needs a non-empty name, got {name!r}")
    if len(out) > MAX_NAME_CHARS:
        raise ConfigError(f"a person's name may have at most {MAX_NAME_CHARS} characters, got {len(out)}")
    if out in (".", "..") or "/" in out:
        raise ConfigError(f"a person's name cannot be '.' or '..' or contain '/' (it must be addressable as "
                          f"/v1/people/<name>), got {out!r}")
    for ch in out:
        if unicodedata.category(ch) in _REFUSED:
            label = unicodedata.name(ch, unicodedata.category(ch))
            raise ConfigError(f"a person's name cannot contain U+{ord(ch):04X} ({label}): control, zero-width "
                              f"and bidi characters are refused")
    return out


def stored_metadata(text: str) -> dict[str, Any]:
    """Metadata read back from storage: a row written before these limits existed (or by
    another program) that breaks them comes back as ``{"invalid_metadata": reason}``, so one
    bad row cannot break listing everyone."""
    try:
        return check_metadata(json.loads(text))
    except (ConfigError, ValueError, RecursionError) as exc:
        return {"invalid_metadata": str(exc)}


def check_metadata(metadata: Any) -> dict[str, Any]:
    """``metadata`` (``{}`` for ``None``) once checked to be storable and returnable as JSON.

    Raises:
        ConfigError: not an object, nested deeper than :data:`MAX_METADATA_DEPTH`, larger
            than :data:`MAX_METADATA_BYTES`, or holding NaN, infinity, non-string keys or
            values JSON cannot hold.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ConfigError(f"metadata must be a JSON object, got {type(metadata).__name__}")
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:  # iterative: a hostile nesting cannot exhaust the Python stack
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_METADATA_DEPTH:
                raise ConfigError(f"metadata may nest at most {MAX_METADATA_DEPTH} levels")
            if isinstance(value, dict):
                if not all(isinstance(k, str) for k in value):
                    raise ConfigError("metadata keys must be strings")
                stack.extend((v, depth + 1) for v in value.values())
            else:
                stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError("metadata numbers must be finite (NaN and infinity are not JSON)")
        elif not (value is None or isinstance(value, (str, int, float, bool))):
            raise ConfigError(f"metadata values must be JSON (objects, arrays, strings, numbers, true/false/null), "
                              f"got {type(value).__name__}")
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ConfigError(f"metadata may take at most {MAX_METADATA_BYTES} bytes as JSON, got {size}")
    return metadata
