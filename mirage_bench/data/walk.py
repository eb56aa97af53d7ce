"""Enumerating the files under a data root: sorted, deterministic, and loud about what it skips.

Hidden files and folders, symlinks that leave the root (or loop, or dangle) and files without an image
extension are returned with a problem instead of being dropped silently, so an index can list them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mirage_bench.data.images import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class FoundFile:
    """A file (or a skipped folder, ``rel_path`` ending in ``/``) under the root."""

    rel_path: str  # POSIX, relative to the root
    path: str  # absolute, as reached from the root (symlinks inside the root are kept as links)
    problem: tuple[str, str] | None = None  # (kind, reason)


def inside(root_real: Path, path: Path) -> bool:
    """Whether ``path``, with every symlink resolved, lies under the resolved root."""
    return Path(os.path.realpath(path)).is_relative_to(root_real)


def path_problem(root_real: Path, path: Path) -> tuple[str, str] | None:
    """Why a single file cannot be part of the data, or None; shared by folder walks and manifest files."""
    if path.name.startswith("."):
        return ("hidden", "hidden file (name starts with '.')")
    if path.is_symlink():
        if not path.exists():
            return ("broken-symlink", f"symlink to {os.readlink(path)!r}, which does not exist")
        if not inside(root_real, path):
            return ("symlink-outside-root", f"symlink to {os.path.realpath(path)}, outside the data root {root_real}")
    if not path.exists():
        return ("missing", "file does not exist")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return ("not-an-image-extension", f"extension {path.suffix or '(none)'!r} is not one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    return None


def walk_files(root: Path) -> list[FoundFile]:
    """Every file under ``root`` in sorted order, following symlinks only while they stay inside it."""
    root = Path(root)
    root_real = Path(os.path.realpath(root))
    found: list[FoundFile] = []
    visited = {str(root_real)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        rel_here = here.relative_to(root)
        kept = []
        for name in sorted(dirnames):
            sub = here / name
            rel = (rel_here / name).as_posix() + "/"
            real = os.path.realpath(sub)
            if name.startswith("."):
                found.append(FoundFile(rel, str(sub), ("hidden", "hidden folder (name starts with '.'), skipped with its contents")))
            elif not inside(root_real, sub):
                found.append(FoundFile(rel, str(sub), ("symlink-outside-root", f"folder symlink to {real}, outside the data root")))
            elif real in visited:
                found.append(FoundFile(rel, str(sub), ("symlink-loop", f"folder symlink to {real}, already visited")))
            else:
                visited.add(real)
                kept.append(name)
        dirnames[:] = kept  # os.walk descends in this (sorted) order
        for name in sorted(filenames):
            path = here / name
            found.append(FoundFile((rel_here / name).as_posix(), str(path.absolute()), path_problem(root_real, path)))
    return sorted(found, key=lambda f: f.rel_path)
