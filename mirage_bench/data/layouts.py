"""Dataset layouts, read exactly as their publishers ship them.

Each layout is a small class: ``detect(root)`` returns the evidence it found (a path) or None, and
``scan(root, protocol)`` returns one :class:`Record` per file, in sorted order. A record carries the
label, the publisher split and the generator *folder name as found*; the protocol card turns folder
names (and aliases) into generator keys later. Files a layout cannot place are records with a problem.

Third-party layouts register through the ``mirage_bench.layouts`` entry-point group.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from mirage_bench.data.walk import FoundFile, listed_file, walk_files
from mirage_bench.errors import DataError
from mirage_bench.registry import Registry

if TYPE_CHECKING:
    from mirage_bench.protocol import ProtocolCard

LAYOUTS: Registry[type["Layout"]] = Registry("data layout", entry_point_group="mirage_bench.layouts")
SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = "test"  # layouts without split folders hold test data (ForenSynths, Synthbuster, ...)


@dataclass(frozen=True)
class Record:
    """One file as a layout reads it (before decoding)."""

    rel_path: str
    path: str
    label: int | None = None  # 0 real, 1 fake
    generator: str | None = None  # the folder name as found
    split: str | None = None
    names: tuple[str, ...] = ()  # every folder name that may identify the generator (GenImage's inner dir)
    family: str | None = None
    source: str = ""  # ForenSynths' object-class folder, or a list's ``source`` column; "" if none
    problem: tuple[str, str] | None = None  # (kind, reason): the file is excluded


class Layout:
    """Base of every layout: subclasses set ``name`` and implement ``detect`` and ``scan``."""

    name: ClassVar[str]
    description: ClassVar[str]

    def detect(self, root: Path) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def scan(self, root: Path, protocol: "ProtocolCard | None" = None) -> list[Record]:  # pragma: no cover
        raise NotImplementedError


class FolderLayout(Layout):
    """A layout whose labels and generators are encoded in folder names: ``parse`` one relative path."""

    def parse(self, parts: tuple[str, ...], root: Path, protocol: "ProtocolCard | None") -> dict | None:  # pragma: no cover
        raise NotImplementedError

    def scan(self, root: Path, protocol: "ProtocolCard | None" = None) -> list[Record]:
        if protocol is not None and protocol.rows:
            raise DataError(f"protocol {protocol.name!r} picks list rows ('rows: {protocol.rows}'), but layout "
                            f"{self.name!r} reads folders; 'rows' applies to manifest lists only. Remove it from the card.")
        records = []
        for found in walk_files(root):
            records.append(self._record(found, root, protocol))
        return records

    def _record(self, found: FoundFile, root: Path, protocol: "ProtocolCard | None") -> Record:
        parsed = self.parse(tuple(found.rel_path.rstrip("/").split("/")), root, protocol)
        if parsed is None:
            problem = found.problem or ("outside-layout", f"not inside a labelled folder of layout {self.name!r}")
            return Record(found.rel_path, found.path, problem=problem)
        names = parsed.pop("names", (parsed["generator"],))
        return Record(found.rel_path, found.path, problem=found.problem, names=tuple(names), **parsed)


def _dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")) if path.is_dir() else []


def _lower(name: str) -> str:
    return name.lower()


@LAYOUTS.register("genimage")
class GenImageLayout(FolderLayout):
    """GenImage: ``{generator}/[inner]/{train,val}/{ai,nature}/file``; ai = fake, nature = real.

    The root may also be one generator folder (``stable_diffusion_v_1_4/``) or its inner folder.
    """

    name = "genimage"
    description = "{generator}/[inner]/{train,val}/{ai,nature}"
    CLASSES = {"ai": 1, "nature": 0}

    def detect(self, root: Path) -> str | None:
        for base in [root, *_dirs(root), *(d for g in _dirs(root) for d in _dirs(g))]:
            for split in ("train", "val"):
                for cls in self.CLASSES:
                    if (base / split / cls).is_dir():
                        return (base / split / cls).relative_to(root).as_posix()
        return None

    def parse(self, parts, root, protocol):
        if len(parts) not in (3, 4, 5) or _lower(parts[-3]) not in ("train", "val") or _lower(parts[-2]) not in self.CLASSES:
            return None
        folders = parts[:-3] or (root.name,)
        return {"label": self.CLASSES[_lower(parts[-2])], "split": _lower(parts[-3]), "generator": folders[0], "names": folders}


@LAYOUTS.register("forensynths")
class ForenSynthsLayout(FolderLayout):
    """ForenSynths / CNNDetection / UniversalFakeDetect: ``[split/]{generator}/[class/]{0_real,1_fake}/file``.

    Without a split folder the split is ``test``; without a generator folder the root's name is the
    generator. Under the splits named in the card's ``split_generator`` (ForenSynths' ``train/`` and
    ``val/`` hold ProGAN by object class) every folder is a class of that one generator. With a card, the
    first folder that names one of its generators is the generator. A folder that
    holds only ``0_real`` or only ``1_fake`` (UniversalFakeDetect's diffusion sets) is fine: the card
    pairs it with its reals.
    """

    name = "forensynths"
    description = "[split/]{generator}/[class/]{0_real,1_fake}"
    CLASSES = {"0_real": 0, "1_fake": 1}
    default_split_generator: ClassVar[dict[str, str]] = {}

    def detect(self, root: Path) -> str | None:
        frontier = [root]
        for _ in range(4):
            for folder in frontier:
                for cls in self.CLASSES:
                    if (folder / cls).is_dir():
                        return (folder / cls).relative_to(root).as_posix()
            frontier = [d for f in frontier for d in _dirs(f)]
        return None

    def parse(self, parts, root, protocol):
        if len(parts) < 2 or _lower(parts[-2]) not in self.CLASSES:
            return None
        prefix, split = list(parts[:-2]), DEFAULT_SPLIT
        if prefix and _lower(prefix[0]) in SPLITS:
            split = _lower(prefix.pop(0))
        split_generator = {**self.default_split_generator, **(protocol.split_generator if protocol else {})}
        label = self.CLASSES[_lower(parts[-2])]
        if split in split_generator:
            return {"label": label, "split": split, "generator": split_generator[split], "source": "/".join(prefix)}
        if not prefix:
            return {"label": label, "split": split, "generator": root.name}
        # The first folder is the generator, unless the card knows a deeper one (UniversalFakeDetect's
        # diffusion_datasets/{guided,ldm_200,...}/1_fake): every folder is a candidate name.
        return {"label": label, "split": split, "generator": prefix[0], "names": tuple(prefix), "source": "/".join(prefix[1:])}


@LAYOUTS.register("wildrf")
class WildRFLayout(ForenSynthsLayout):
    """WildRF: ``{train,val}/{0_real,1_fake}`` (Reddit) and ``test/{reddit,twitter,facebook}/{0_real,1_fake}``."""

    name = "wildrf"
    description = "{train,val}/{0_real,1_fake} + test/{reddit,twitter,facebook}/{0_real,1_fake}"
    PLATFORMS = ("reddit", "twitter", "facebook")
    default_split_generator = {"train": "reddit", "val": "reddit"}

    def detect(self, root: Path) -> str | None:
        for platform in self.PLATFORMS:
            for cls in self.CLASSES:
                if (root / "test" / platform / cls).is_dir() and (root / "train").is_dir():
                    return f"train/ and test/{platform}/{cls}"
        return None


@LAYOUTS.register("realfake")
class RealFakeLayout(FolderLayout):
    """Separate real and fake roots: ``real/[source/]file`` and ``fake/[generator/]file``."""

    name = "realfake"
    description = "{real,fake}/[generator/]file"
    CLASSES = {"real": 0, "fake": 1}

    def detect(self, root: Path) -> str | None:
        present = [c for c in self.CLASSES if (root / c).is_dir()]
        return " and ".join(f"{c}/" for c in present) if len(present) == 2 else None

    def parse(self, parts, root, protocol):
        if len(parts) not in (2, 3) or _lower(parts[0]) not in self.CLASSES:
            return None
        generator = parts[1] if len(parts) == 3 else _lower(parts[0])
        return {"label": self.CLASSES[_lower(parts[0])], "split": DEFAULT_SPLIT, "generator": generator}


@LAYOUTS.register("synthbuster")
class SynthbusterLayout(FolderLayout):
    """Synthbuster: one flat folder per generator beside the RAISE-1k reals: ``{folder}/file``.

    A folder's label comes from the card (``role: real``); without a card, ``RAISE*`` and ``real`` folders
    are real.
    """

    name = "synthbuster"
    description = "{RAISE,generator}/file (flat folders)"
    REAL_PREFIXES = ("raise", "real")

    def detect(self, root: Path) -> str | None:
        folders = _dirs(root)
        reals = [d for d in folders if _lower(d.name).startswith(self.REAL_PREFIXES)]
        flat = all(not _dirs(d) for d in folders)
        return f"{reals[0].name}/ beside {len(folders) - 1} flat folders" if reals and flat and len(folders) > 1 else None

    def parse(self, parts, root, protocol):
        if len(parts) != 2:
            return None
        key = protocol.generator_for_folder(parts[0]) if protocol else None
        if key is not None and protocol.generators[key].role != "both":
            label = 0 if protocol.generators[key].role == "real" else 1
        else:
            label = 0 if _lower(parts[0]).startswith(self.REAL_PREFIXES) else 1
        return {"label": label, "split": DEFAULT_SPLIT, "generator": parts[0]}


@LAYOUTS.register("manifest")
class ManifestFileLayout(Layout):
    """A CSV or JSONL list: ``path, label, generator`` and optional ``split, family, source``.

    Paths are relative to the list's folder (absolute paths must lie inside it); labels are 0/1 or
    real/fake. The root is the list file, or a folder holding exactly one ``manifest.csv``/``.jsonl``.
    Other columns may pick rows (the card's ``rows``). A ``layout`` column with several values means the list
    holds the same images in several layouts; reading them all would mix them, so it must be picked.
    """

    name = "manifest"
    description = "manifest.csv / manifest.jsonl (path, label, generator[, split, family, source])"
    FILES = ("manifest.csv", "manifest.jsonl")
    LABELS = {"0": 0, "1": 1, "real": 0, "fake": 1}

    def detect(self, root: Path) -> str | None:
        if root.is_file():
            return root.name if root.suffix.lower() in (".csv", ".jsonl") else None
        found = [name for name in self.FILES if (root / name).is_file()]
        return found[0] if len(found) == 1 else None

    def list_file(self, root: Path) -> Path:
        found = self.detect(root)
        if found is None:
            raise DataError(f"{root}: not a manifest list; give a .csv/.jsonl file or a folder holding one of {self.FILES}")
        return root if root.is_file() else root / found

    def scan(self, root: Path, protocol: "ProtocolCard | None" = None) -> list[Record]:
        return self.read(Path(root), protocol.rows if protocol is not None else {})

    def read(self, root: Path, rows: Mapping[str, Sequence[str]]) -> list[Record]:
        """The records of the rows whose columns hold one of the values ``rows`` lists (every row if empty)."""
        list_path = self.list_file(Path(root))
        base = list_path.parent
        records: dict[str, Record] = {}
        for line_no, row in _picked_rows(list_path, rows):
            where = f"{list_path}:{line_no}"
            missing = [key for key in ("path", "label", "generator") if not str(row.get(key) or "").strip()]
            if missing:
                raise DataError(f"{where}: missing {', '.join(missing)}; every row needs path, label and generator")
            label = self.LABELS.get(str(row["label"]).strip().lower())
            if label is None:
                raise DataError(f"{where}: label {row['label']!r} is not one of 0, 1, real, fake")
            found = listed_file(base, str(row["path"]))
            rel = found.rel_path
            if rel in records:
                raise DataError(f"{where}: {rel!r} is listed twice; each file may appear once")
            split = _lower(str(row.get("split") or DEFAULT_SPLIT).strip())
            generator = str(row["generator"]).strip()
            records[rel] = Record(
                rel_path=rel, path=found.path, label=label, generator=generator, split=split,
                names=(generator,), family=str(row.get("family") or "").strip() or None,
                source=str(row.get("source") or "").strip(), problem=found.problem,
            )
        return [records[k] for k in sorted(records)]


#: The list column that says which layout a row's copy of an image comes from.
LAYOUT_COLUMN = "layout"


def _picked_rows(path: Path, rows: Mapping[str, Sequence[str]]):
    """(line number, row) of the rows ``rows`` picks; a column it names that the list lacks, or a ``layout`` column
    with several values that it does not pick from, is an error."""
    wanted = {column: {str(v).strip() for v in values} for column, values in rows.items()}
    listed = list(_read_rows(path))
    columns = sorted({key for _, row in listed for key in row})
    unknown = sorted(set(wanted) - set(columns))
    if unknown:
        raise DataError(f"{path}: the card's 'rows' names column(s) {unknown} that the list does not have; "
                        f"its columns: {columns}")
    picked = [(n, row) for n, row in listed
              if all(str(row.get(column) or "").strip() in values for column, values in wanted.items())]
    layouts = sorted({str(row.get(LAYOUT_COLUMN) or "").strip() for _, row in picked} - {""})
    if len(layouts) > 1 and LAYOUT_COLUMN not in wanted:
        raise DataError(
            f"{path}: column {LAYOUT_COLUMN!r} holds {len(layouts)} layouts ({', '.join(layouts)}); reading every row "
            f"would mix copies of the same images. Pick one: 'rows: {{{LAYOUT_COLUMN}: [{layouts[0]}]}}' in the "
            f"protocol card, or `mirage-bench protocols new {path} --rows {LAYOUT_COLUMN}={layouts[0]} ...`."
        )
    return picked


def _read_rows(path: Path):
    """(line number, row dict) for a CSV (header row) or JSONL list."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        for line_no, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_no}: not valid JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{line_no}: expected a JSON object per line, got {type(row).__name__}")
                yield line_no, row
    else:
        for line_no, row in enumerate(csv.DictReader(text.splitlines()), 2):
            yield line_no, row


def detect_layout(root: Path) -> tuple[str, str]:
    """The one layout ``root`` matches and the evidence; none or several is an error naming them.

    WildRF is a special case of ForenSynths' ``0_real/1_fake`` folders, so it wins over it.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data root {root} does not exist")
    matches = {}
    for name in LAYOUTS.names():
        evidence = LAYOUTS.get(name)().detect(root)
        if evidence is not None:
            matches[name] = evidence
    if "wildrf" in matches:
        matches.pop("forensynths", None)
    if len(matches) == 1:
        return next(iter(matches.items()))
    if not matches:
        raise DataError(
            f"{root}: no known data layout found. Known layouts: "
            + "; ".join(f"{n}: {LAYOUTS.get(n).description}" for n in LAYOUTS.names())
            + ". Pass --layout NAME, or write a manifest.csv."
        )
    raise DataError(
        f"{root}: ambiguous data layout; it matches {len(matches)} layouts: "
        + "; ".join(f"{n} (found {e})" for n, e in matches.items())
        + ". Pass --layout with one of them."
    )
