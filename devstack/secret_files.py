"""Files that hold secrets: written readable by their owner only from the first byte, whole or not at all."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def write_private(path: Path, content: object) -> None:
    """``content`` as JSON (or ``str`` as is) in ``path``, mode 0600 from its creation; an interrupted write
    leaves the old file, never half a new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content if isinstance(content, str) else json.dumps(content))
    tmp.replace(path)


def generated_passwords(path: Path, names: Iterable[str]) -> dict[str, str]:
    """A password for each of ``names``, generated once and kept in ``path``; ones already there are kept."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = list(names)
    if any(not known.get(name) for name in wanted):
        known = {**known, **{name: known.get(name) or secrets.token_urlsafe(18) for name in wanted}}
        write_private(path, known)
    path.chmod(0o600)
    return {name: known[name] for name in wanted}
