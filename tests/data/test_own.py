"""Own data without YAML: ``protocol_from_folder``, the seeded carve rule, layout/split diagnoses, manifest row
picking and ``protocols new``, on tiny generated trees."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.data import build_manifest, protocol_subsets
from mirage_bench.data.carve import carved_split
from mirage_bench.data.layouts import LAYOUTS
from mirage_bench.data.own import protocol_from_folder
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.protocol import CarveRule, load_protocol

from .conftest import write_image

ENV = {"COLUMNS": "250"}
FLAT = [f"{gen}/{cls}/{i:03d}.png" for gen in ("ADM", "BigGAN", "glide") for cls in ("0_real", "1_fake") for i in range(10)]
GENIMAGE = [f"{gen}/imagenet_{gen}/{split}/{cls}/{i}.png" for gen in ("adm", "sdv4")
            for split in ("train", "val") for cls in ("ai", "nature") for i in range(6)]


def test_a_flat_forensynths_folder_gets_a_carved_split_and_trains(make_tree):
    root = make_tree(FLAT, name="mine")
    card, choices = protocol_from_folder(root, ["adm"])  # folder names compare case-blind
    assert (card.layout, card.train, card.test) == ("forensynths", ["ADM"], ["BigGAN", "glide"])
    assert (card.train_split, card.test_split, card.carve) == ("train", "test", CarveRule(test_fraction=0.2, seed=0))
    assert card.name == "mine-train-ADM" and card.generators["glide"].family == "unknown"
    assert choices[0] == "layout forensynths (detected: found ADM/0_real)"
    assert "test: every generator not trained on (the unseen generators): BigGAN, glide" in choices
    manifest, exclusions = build_manifest(root, card.layout, card)
    data = protocol_subsets(card, manifest, exclusions)
    adm = manifest[manifest["generator"] == "ADM"]
    assert set(adm["split"]) == {"train", "test"}
    assert set(data.train["ADM"]["rel_path"]) | set(data.validation["ADM"]["rel_path"]) == set(adm[adm["split"] == "train"]["rel_path"])
    assert len(data.test["BigGAN"]) == len(data.test["glide"]) == 20  # unseen generators: every file tested
    assert set(data.train["ADM"]["label"]) == {0, 1}


def test_a_genimage_folder_reads_its_split_folders(make_tree):
    card, choices = protocol_from_folder(make_tree(GENIMAGE), ["sdv4"], ["sdv4", "adm"], split_seed=3, val_fraction=0.25)
    assert (card.layout, card.train, card.test, card.carve) == ("genimage", ["sdv4"], ["sdv4", "adm"], None)
    assert (card.train_split, card.test_split, card.validation.fraction, card.validation.seed) == ("train", "val", 0.25, 3)
    assert "splits: read from the folders: train from 'train', test from 'val' (as GenImage, whose val folder is its test set)" in choices


def test_the_carve_rule_is_the_documented_hash_and_ignores_file_system_order(make_tree, tmp_path):
    rule = CarveRule(test_fraction=0.3, seed=7)
    for path in ("ADM/0_real/000.png", "a b/1_fake/x.JPG"):
        digest = hashlib.sha256(f"7/carve/{path}".encode()).digest()
        assert carved_split(path, rule) == ("test" if int.from_bytes(digest[:8], "big") < 0.3 * 2**64 else "train")
    forward = make_tree(FLAT, name="forward")
    backward = make_tree(list(reversed(FLAT)), name="backward")  # files created in the other order
    splits = [build_manifest(root, "forensynths", protocol_from_folder(root, ["ADM"], split_seed=7, test_fraction=0.3).card)[0]
              .set_index("rel_path")["split"] for root in (forward, backward)]
    assert splits[0].equals(splits[1]) and set(splits[0]) == {"train", "test"}


def test_adding_files_moves_no_carved_file_and_the_seed_changes_the_split(make_tree):
    root = make_tree(FLAT)
    card = protocol_from_folder(root, ["ADM"]).card
    before = build_manifest(root, card.layout, card)[0].set_index("rel_path")["split"]
    for i in range(10, 30):
        write_image(root / f"ADM/1_fake/{i:03d}.png")
    after = build_manifest(root, card.layout, card)[0].set_index("rel_path")["split"]
    assert len(after) == len(before) + 20 and after[before.index].equals(before)
    reseeded = protocol_from_folder(root, ["ADM"], split_seed=1).card
    assert not build_manifest(root, card.layout, reseeded)[0].set_index("rel_path")["split"].equals(after)


def test_choices_name_every_rule_and_the_card_refuses_what_it_cannot_do(make_tree):
    root = make_tree(FLAT)
    choices = protocol_from_folder(root, ["ADM", "BigGAN"], ["glide", "ADM"]).choices
    assert "test: as given: glide, ADM" in choices
    carve = next(c for c in choices if c.startswith("splits: no split folders"))
    assert "sha256('0/carve/<path under the root>')" in carve and "ADM train" in carve and "BigGAN train" in carve
    with pytest.raises(DataError, match="no generator folder 'glid' in the data. Did you mean 'glide'"):
        protocol_from_folder(root, ["glid"])
    with pytest.raises(DataError, match="--train names no generator; generators found: ADM, BigGAN, glide"):
        protocol_from_folder(root, [])
    with pytest.raises(DataError, match="every generator with fakes .* is trained on"):
        protocol_from_folder(root, ["ADM", "BigGAN", "glide"])
    with pytest.raises(ConfigError, match="test_fraction"):
        protocol_from_folder(root, ["ADM"], test_fraction=1.0)


def test_fake_only_folders_pair_with_the_one_folder_of_reals(make_tree):
    paths = [f"{cls}/{i}.png" for cls in ("real", "fake/ganA", "fake/ganB") for i in range(8)]
    card, choices = protocol_from_folder(make_tree(paths), ["ganA"])
    assert card.layout == "realfake" and card.generators["ganA"].reals == "real" and card.generators["real"].role == "real"
    assert card.test == ["ganB"]  # a pool of reals is no test subset
    assert "reals: ganA, ganB hold only fakes; paired with the reals of real" in choices


def test_a_card_naming_the_wrong_layout_names_the_one_the_folder_looks_like(make_tree):
    root = make_tree(FLAT)
    card = protocol_from_folder(root, ["ADM"]).card.model_copy(update={"layout": "genimage", "carve": None})
    with pytest.raises(DataError) as caught:
        build_manifest(root, card.layout, card)
    message = str(caught.value)
    assert "no usable images found with layout 'genimage' (60 file(s) excluded)" in message
    assert "the folder looks like layout 'forensynths' (found ADM/0_real). Set `layout: forensynths`" in message
    with pytest.raises(DataError, match="looks like layout 'forensynths'"):
        protocol_from_folder(root, ["ADM"], layout="genimage")


def test_a_flat_folder_read_without_carve_names_the_cause(make_tree):
    root = make_tree(FLAT)
    card = protocol_from_folder(root, ["ADM"]).card.model_copy(update={"carve": None})
    with pytest.raises(DataError, match=r"ADM/train: no real or fake images \(every file of it lies in split 'test'"):
        protocol_subsets(card, *build_manifest(root, card.layout, card, roles=("train", "test")))
    nothing_read = card.model_copy(update={"test_split": "val"})
    with pytest.raises(DataError) as caught:
        build_manifest(root, card.layout, nothing_read, roles=("train", "test"))
    assert "60 usable file(s) lie in generators or splits that protocol" in str(caught.value)
    assert "the folder holds ADM: test; BigGAN: test; glide: test. A folder without split folders" in str(caught.value)


def test_carving_a_folder_with_split_folders_is_refused(make_tree):
    root = make_tree(GENIMAGE)
    card = protocol_from_folder(root, ["sdv4"]).card.model_copy(update={"carve": CarveRule(), "test_split": "test"})
    with pytest.raises(DataError, match=r"carves a train/test split \('carve:'\), but the data has split folders of its own \(train, val\)"):
        build_manifest(root, card.layout, card)


def _two_layout_list(tmp_path):
    """One list naming the same images twice: once per layout copy, told apart by a ``layout`` column."""
    lines = ["path,label,generator,layout"]
    for i in range(6):
        for gen in ("adm", "sdv4"):
            for label, cls, fs_cls in ((0, "nature", "0_real"), (1, "ai", "1_fake")):
                gi, fs = f"gi/{gen}/{cls}/{i}.png", f"fs/{gen}/{fs_cls}/{i}.png"
                write_image(tmp_path / gi, seed=i * 4 + label)
                (tmp_path / fs).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(tmp_path / gi, tmp_path / fs)
                lines += [f"{gi},{label},{gen},genimage", f"{fs},{label},{gen},forensynths"]
    listing = tmp_path / "manifest.csv"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def test_a_list_holding_two_layouts_must_be_picked_from(tmp_path):
    listing = _two_layout_list(tmp_path)
    with pytest.raises(DataError, match=r"column 'layout' holds 2 layouts \(forensynths, genimage\); .* 'rows: \{layout: \[forensynths\]\}'"):
        build_manifest(listing)
    card, _ = protocol_from_folder(listing, ["sdv4"], rows={"layout": ["genimage"]})
    assert card.rows == {"layout": ["genimage"]} and card.layout == "manifest" and card.carve is not None
    manifest, _ = build_manifest(listing, card.layout, card)
    assert len(manifest) == 24 and all(p.startswith("gi/") for p in manifest["rel_path"])
    with pytest.raises(DataError, match=r"names column\(s\) \['copy'\] that the list does not have"):
        LAYOUTS.get("manifest")().read(listing, {"copy": ["a"]})
    with pytest.raises(DataError, match="'rows' applies to manifest lists only"):
        build_manifest(tmp_path / "gi", "genimage", card.model_copy(update={"layout": "genimage"}))


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def test_protocols_new_writes_a_card_that_loads_back_and_never_overwrites(make_tree, tmp_path):
    root = make_tree(FLAT)
    out = tmp_path / "cards/mine.yaml"
    result = run("protocols", "new", root, "--out", out, "--train", "ADM", "--test", "glide", "--split-seed", "5")
    assert result.exit_code == 0, result.output
    assert "- test: as given: glide" in result.output and f"wrote {out}: protocol 'root-train-ADM'" in result.output
    built = protocol_from_folder(root, ["ADM"], ["glide"], split_seed=5).card
    loaded = load_protocol(str(out))
    assert loaded.model_dump(exclude={"source"}) == built.model_dump(exclude={"source"})
    assert out.read_text().startswith("# Built by `mirage-bench protocols new`")
    assert yaml.safe_load(out.read_text())["carve"] == {"test_fraction": 0.2, "seed": 5}
    again = run("protocols", "new", root, "--out", out, "--train", "BigGAN")
    assert again.exit_code == 2 and "already exists; refusing to overwrite it" in again.output
    assert load_protocol(str(out)).train == ["ADM"]
    bad = run("protocols", "new", root, "--out", tmp_path / "x.yaml", "--train", "ADM", "--rows", "layout")
    assert bad.exit_code == 2 and "expected COLUMN=VALUE" in bad.output
