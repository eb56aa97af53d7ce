"""Data scans report their progress: a step for the listing, one counted task for the decoding, a step for the table."""

from __future__ import annotations

from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.data import build_manifest

from .conftest import write_image


class Recorder:
    """A Progress that keeps each task's description, total and advances."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, int, list[int]]] = []

    def __call__(self, description: str, total: int):
        advances: list[int] = []
        self.tasks.append((description, total, advances))
        return advances.append


def genimage_tree(root, n: int):
    for i in range(n):
        write_image(root / f"gen/train/{'ai' if i % 2 else 'nature'}/{i}.png", size=(8, 8))
    (root / "gen/train/ai/broken.png").write_bytes(b"")
    return root


def test_build_manifest_shows_the_listing_and_counts_every_decoded_file(tmp_path):
    root = genimage_tree(tmp_path / "data", 5)
    recorder = Recorder()
    manifest, exclusions = build_manifest(root, progress=recorder)
    assert len(manifest) == 5 and len(exclusions) == 1
    assert [(d, t, sum(a)) for d, t, a in recorder.tasks] == [
        (f"list the files under {root}", 1, 1),
        ("decode and hash 6 images", 6, 6),  # the empty file is decoded, then excluded
        ("build the manifest table", 1, 1),
    ]


def test_data_index_in_a_pipe_prints_plain_progress_lines(tmp_path):
    root = genimage_tree(tmp_path / "data", 3)
    result = CliRunner().invoke(app, ["data", "index", str(root), "--out", str(tmp_path / "m.parquet")],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"list the files under {root}: done in 0:00:0")
    assert lines[1].startswith("decode and hash 4 images: done 4/4 in 0:00:0")
