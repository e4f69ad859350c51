"""Small file-system helpers shared by every writer of a finished output folder. No ``ray``."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` onto ``out``.

    An existing ``out`` is first renamed aside and removed only after ``tmp`` is in place, so at no moment is
    there a half-written ``out``: readers see the old output or the new one.
    """
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
