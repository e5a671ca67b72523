"""Reading templated operator arguments: Jinja renders them as strings, where '' and 'None' mean unset."""

from __future__ import annotations

from typing import Any


def optional(value: Any, kind: type) -> Any:
    """``value`` as ``kind``, or None when it was not given."""
    if value is None or value == "" or value == "None":
        return None
    return kind(value)


def flag(value: Any) -> bool:
    """A boolean argument that may arrive rendered as text ('True', 'false', '1', ...)."""
    return str(value).lower() in {"true", "1", "yes", "on"}
