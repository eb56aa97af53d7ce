"""A micro mini set (16 px, a dozen steps per generator) built in tmp: layout, labels, splits, determinism, cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mirage_bench.errors import ConfigError, DataError
from mirage_bench.mini.build import build_mini, mini_config, training_pool
from mirage_bench.mini.families import GENERATORS
from mirage_bench.mini.manifest import read_manifest
from mirage_bench.mini.photos import PHOTOS, photos_of

MICRO = dict(size=16, per_generator=5, seed=0, val_per_generator=3, pool=24,
             generator_knobs={"iterations": 12, "width": 8, "batch": 4, "sample_steps": 2})


@pytest.fixture(scope="module")
def micro_build(tmp_path_factory) -> tuple[Path, list[tuple[str, int, list[int]]]]:
    """The micro set and the progress tasks its build showed: (description, total, advances)."""
    root = tmp_path_factory.mktemp("mini") / "set"
    tasks: list[tuple[str, int, list[int]]] = []

    def progress(description: str, total: int):
        tasks.append((description, total, []))
        return tasks[-1][2].append

    result = build_mini(root, progress=progress, **MICRO)
    assert not result.cached
    return root, tasks


@pytest.fixture(scope="module")
def micro(micro_build) -> Path:
    return micro_build[0]


def test_every_stage_of_the_build_shows_its_progress(micro_build) -> None:
    steps, per_split = MICRO["generator_knobs"]["iterations"], MICRO["per_generator"] + MICRO["val_per_generator"]
    shown = [(description, total, sum(advances)) for description, total, advances in micro_build[1]]
    assert shown == [("training crops", 1, 1)] + [
        task for key in GENERATORS for task in ((f"train {key}", steps, steps), (f"write {key}", per_split, per_split))]


def test_layout_matches_genimage_and_the_manifest(micro: Path) -> None:
    files = sorted(p.relative_to(micro).as_posix() for p in micro.rglob("*.png") if p.name != "contact_sheet.png")
    records = read_manifest(micro)
    assert files == [r.rel_path for r in records]
    for generator in GENERATORS:
        for split, count in (("train", 5), ("val", 3)):
            for label_dir in ("ai", "nature"):
                folder = micro / generator / split / label_dir
                assert len(sorted(folder.glob("*.png"))) == count, folder
    with Image.open(micro / records[0].rel_path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (16, 16)
    assert (micro / "contact_sheet.png").is_file()


def test_labels_follow_the_folders(micro: Path) -> None:
    for record in read_manifest(micro):
        label_dir = record.rel_path.split("/")[2]
        assert record.label == (1 if label_dir == "ai" else 0)
        expected = "photo" if record.label == 0 else ("reconstruction" if record.generator == "aerecon" else "sample")
        assert record.source == expected


def test_no_source_photo_feeds_both_splits(micro: Path) -> None:
    used = {"train": set(), "val": set()}
    for record in read_manifest(micro):
        if record.photo:
            used[record.split].add(record.photo)
    assert used["train"] and used["val"]
    assert used["train"].isdisjoint(used["val"])
    assert used["train"] <= {p.key for p in photos_of("train")}
    assert used["val"] <= {p.key for p in photos_of("val")}


def test_the_stereo_pair_is_one_photo() -> None:
    keys = [p.key for p in PHOTOS]
    assert len(keys) == len(set(keys))
    assert not any(k.startswith("motorcycle_") for k in keys)
    assert {p.split for p in PHOTOS} == {"train", "val"}


def test_card_records_every_knob_and_the_losses(micro: Path) -> None:
    card = json.loads((micro / "card.json").read_text())
    assert card["config"] == mini_config(**MICRO).model_dump(mode="json")
    assert card["version"].startswith(f"{card['format_version']}+")
    for generator in GENERATORS:
        entry = card["generators"][generator]
        assert entry["knobs"]["iterations"] == 12
        loss = entry["losses"][entry["objective"]]
        assert np.isfinite([loss["first"], loss["last"]]).all()
        assert card["counts"][generator] == {"train": {"ai": 5, "nature": 5}, "val": {"ai": 3, "nature": 3}}


def test_existing_set_is_reused_and_never_overwritten_without_force(micro: Path) -> None:
    stamp = (micro / "card.json").stat().st_mtime_ns
    again = build_mini(micro, **MICRO)
    assert again.cached and (micro / "card.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="--force"):
        build_mini(micro, **{**MICRO, "seed": 1})


def test_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a mini set"):
        build_mini(tmp_path, **MICRO)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_force_rebuild_gives_the_same_files(micro: Path, tmp_path: Path) -> None:
    before = [(r.rel_path, r.sha256) for r in read_manifest(micro)]
    shutil.copy(micro / "card.json", tmp_path / "card.json")
    rebuilt = build_mini(micro, force=True, **MICRO)
    assert not rebuilt.cached
    assert [(r.rel_path, r.sha256) for r in read_manifest(micro)] == before
    assert rebuilt.card["version"] == json.loads((tmp_path / "card.json").read_text())["version"]
    assert sorted(p.name for p in micro.parent.iterdir()) == ["set"]  # no staging or old folder left behind


def test_seed_changes_the_training_crops() -> None:
    _, a = training_pool(mini_config(**{**MICRO, "seed": 0}))
    _, b = training_pool(mini_config(**{**MICRO, "seed": 1}))
    _, a_again = training_pool(mini_config(**{**MICRO, "seed": 0}))
    assert np.array_equal(a, a_again) and not np.array_equal(a, b)


@pytest.mark.parametrize("bad", [{"size": 24}, {"generator_knobs": {"iteratons": 3}}])
def test_invalid_knobs_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        mini_config(**{**MICRO, **bad})


def test_cli_refuses_to_overwrite_other_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mirage_bench.cli import app

    (tmp_path / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["data", "mini", "--out", str(tmp_path), "--size", "16"])
    assert result.exit_code == 2, result.output
    assert "refusing to overwrite" in result.output
