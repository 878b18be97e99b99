"""Build the zip that spark-submit ships to executors with --py-files, once per version.

The zip holds the recsys_spark and jobs packages. Its name carries the package version and
a hash of the sources, so an unchanged tree reuses the zip and any edit builds a new one.
Prints the zip's path.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("recsys_spark", "jobs")


def source_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        files.extend(
            path
            for path in sorted((ROOT / package).rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        )
    return files


def build(out_dir: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from recsys_spark import __version__

    files = source_files()
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    target = out_dir / f"recsys_spark-{__version__}-{digest.hexdigest()[:12]}.zip"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(ROOT).as_posix())
    partial.rename(target)
    return target


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "pyfiles"
    print(build(out))
