"""Static releases: an immutable directory holding the commit's files, published atomically."""

import os
import shutil
from pathlib import Path

from spacehub.core.release import Artifact


def build_static_release(source: Path, releases_dir: Path, commit: str) -> Artifact:
    """Copy `source` (a checkout) to `releases_dir/<commit>`; the rename makes it appear whole."""
    final = releases_dir / commit
    if not final.is_dir():
        releases_dir.mkdir(parents=True, exist_ok=True)
        partial = releases_dir / f".{commit}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        try:
            partial.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(partial, ignore_errors=True)
    return Artifact(kind="static", ref=str(final), commit=commit)
