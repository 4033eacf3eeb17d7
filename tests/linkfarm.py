"""Folders of real data files for ingest tests, without copying the data.

Hard links, not symbolic ones: ingest refuses a symbolic link that leads out of the
folder it walks. Where the data sits on another file system a hard link is not
possible, and the file is copied into the test's temporary folder instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def place(file: Path, at: Path) -> Path:
    try:
        os.link(file, at)
    except OSError:
        shutil.copyfile(file, at)
    return at
