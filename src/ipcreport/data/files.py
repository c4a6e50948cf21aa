"""Files written whole and hashed by content: the small pieces every layer shares.

A reader (a person, a browser, the next build) sees a file or a folder either as it was or as
it is now, never half-written; hashes are of content, in a stable order, so they can be keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file beside ``path``, then rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False, default=str)
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """A JSON file's content, or None when it is missing or unreadable (treated as unknown)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def replace_folder(new: Path, final: Path) -> None:
    """Put ``new`` where ``final`` is by renames: readers see the old folder or the new one."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    if old.exists():
        shutil.rmtree(old)


def sha256_bytes(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """A hash of a JSON-able value that does not depend on key order."""
    return sha256_bytes(json.dumps(value, sort_keys=True, default=str).encode())


def sha256_files(paths: list[Path], root: Path | None = None) -> str:
    """A hash of files' names (relative to ``root``) and bytes, in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root) if root else path.name).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
