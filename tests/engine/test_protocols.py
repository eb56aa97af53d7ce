"""What a protocol card trains and tests: ``mode`` (single/matrix), ``train_from`` with ``--train-data-root``,
and what reading the data noted or excluded, printed and recorded (real cards and trees on disk)."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
import yaml
from typer.testing import CliRunner

import helpers
from mirage_bench.cli import app
from mirage_bench.engine.runner import Options, describe_plan, execute, load_benchmark
from mirage_bench.errors import ConfigError
from mirage_bench.runconfig import RunConfig
from mirage_bench.store import Store

TINY_RUN = [*helpers.TINY, "train.epochs=1"]
FORENSYNTHS_TEST = ["progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "crn", "imle",
                    "seeingdark", "san", "deepfake", "whichfaceisreal"]


def _card(folder, name, **fields):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **fields}))
    return folder


def _two_generator_card(cards, mode):
    return _card(cards, f"pair-{mode}", version=1, layout="genimage", train=["a", "b"], test=["a", "b"], mode=mode,
                 generators={"a": {"folder": "a", "family": "gan"}, "b": {"folder": "b", "family": "diffusion"}})


@pytest.fixture(scope="module")
def pair_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    for seed, (generator, split, n) in enumerate([("a", "train", 6), ("b", "train", 5), ("a", "val", 3), ("b", "val", 3)]):
        helpers.write_images(root, generator, split, n, n, seed)
    return root


@pytest.mark.parametrize("mode, expected", [("single", {"a+b": 2 * (6 + 5) - 4}), ("matrix", {"a": 2 * 6 - 2, "b": 2 * 5 - 2})])
def test_mode_single_trains_one_model_on_the_union_and_matrix_one_per_generator(mode, expected, pair_root, tmp_path):
    cards = _two_generator_card(tmp_path / "cards", mode)
    bench = load_benchmark(RunConfig(protocol=f"pair-{mode}", detectors=["tinycnn"], data_root=pair_root, overrides=TINY_RUN,
                                     protocol_dirs=[cards]))
    plan = describe_plan(bench, Store(tmp_path / "out"))
    train = plan[plan["kind"] == "train"]
    # 10% validation per generator and label: one image of each label of each generator
    assert {row.train: row.work for row in train.itertuples()} == {
        name: f"train on {n} images ({n // 4 + (n % 4 > 0)} steps), validate on {4 if mode == 'single' else 2}"
        for name, n in expected.items()}
    assert set(plan[plan["kind"] == "eval"]["train"]) == set(expected)
    if mode == "single":
        assert set(bench.subsets.train["a+b"]["generator"]) == {"a", "b"}
        assert not set(bench.subsets.train["a+b"]["image_id"]) & set(bench.subsets.validation["a+b"]["image_id"])
    dry = CliRunner().invoke(app, ["run", "--protocols", str(cards), "--protocol", f"pair-{mode}", "--data-root", str(pair_root),
                                   "--detectors", "tinycnn", "--out", str(tmp_path / "out"), "--dry-run"], terminal_width=250)
    assert dry.exit_code == 0, dry.output
    assert all(f"│ {name} " in dry.output for name in expected)


def test_builtin_cards_keep_their_training_sets():
    from mirage_bench.protocol import list_protocols, load_protocol, training_protocol

    assert load_protocol("mini").mode == "single" and load_protocol("mini").train == ["dcgan"]
    assert load_protocol("mini-matrix").mode == load_protocol("genimage-matrix").mode == "matrix"
    for name in ("genimage", "genimage-degrade", "forensynths", "wildrf"):
        assert len(load_protocol(name).train) == 1, name
    borrowed = {card.name: training_protocol(card).name for card in list_protocols() if card.train_from}
    assert borrowed == {"aigcdetect": "forensynths", "chameleon": "genimage", "synthbuster": "genimage", "ufd": "forensynths",
                        "mirage-recent": "genimage"}


def _forensynths_tree(root, test_generators, classes=("car", "cat"), n_train=6):
    """ForenSynths as distributed: train/{class}/{0_real,1_fake} (ProGAN) and test/{generator}/{0_real,1_fake}."""
    writes = [(f"train/{c}/{cls}", n_train) for c in classes for cls in ("0_real", "1_fake")]
    writes += [(f"test/{g}/{cls}", 1) for g in test_generators for cls in ("0_real", "1_fake")]
    for k, (folder, n) in enumerate(writes):
        for i in range(n):
            helpers.write_png(root / folder / f"{i:03d}.png", seed=1000 * k + i)
    return root


def test_train_from_trains_on_the_named_cards_data_and_shares_its_checkpoints(tmp_path):
    """A ufd run trains on forensynths' training data, read from --train-data-root: the forensynths run's
    checkpoints are the same training cells, so the second run trains nothing."""
    cnndetection = _forensynths_tree(tmp_path / "CNNDetection", FORENSYNTHS_TEST)
    ufd_test = _forensynths_tree(tmp_path / "ufd_test", [], classes=())
    for generator in ("progan", "cyclegan"):
        for cls in ("0_real", "1_fake"):
            for i in range(2):
                helpers.write_png(ufd_test / generator / cls / f"{i}.png", seed=10**6 + len(list(ufd_test.rglob("*.png"))))
    cards = _card(tmp_path / "cards", "ufd-two", base="ufd", test=["progan", "cyclegan"], degradations=[])
    out = tmp_path / "out"
    first = execute(load_benchmark(RunConfig(protocol="forensynths", detectors=["tinycnn"], data_root=cnndetection, overrides=TINY_RUN)), Options(out=out))
    bench = load_benchmark(RunConfig(protocol="ufd-two", detectors=["tinycnn"], data_root=ufd_test, overrides=TINY_RUN,
                                     protocol_dirs=[cards], train_data_root=cnndetection))
    assert bench.training.name == "forensynths" and list(bench.subsets.train) == ["progan"]
    assert set(bench.subsets.train["progan"]["source"]) == {"car", "cat"}
    plan = describe_plan(bench, Store(out))
    assert plan[plan["kind"] == "train"]["status"].tolist() == ["done"]
    second = execute(bench, Options(out=out))
    assert [c.cell_id for c in second.train_cells] == [c.cell_id for c in first.train_cells]
    assert [c.checkpoint_sha256 for c in second.train_cells] == [c.checkpoint_sha256 for c in first.train_cells]
    assert not any(c.trained_in_this_run for c in second.train_cells)
    assert sorted(c.generator for c in second.eval_cells) == ["cyclegan", "progan"]
    assert second.training_protocol["name"] == "forensynths" and second.training_protocol["via_train_from"]
    assert [s["roles"] for s in second.data_sources] == ["test", "train"]


def test_missing_training_data_names_the_card_root_layout_and_option(tmp_path):
    chameleon = tmp_path / "Chameleon"
    for cls in ("0_real", "1_fake"):
        for i in range(2):
            helpers.write_png(chameleon / "test" / cls / f"{i}.png", seed=i + 10 * len(cls))
    args = ["run", "--protocol", "chameleon", "--data-root", str(chameleon), "--detectors", "tinycnn", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--dry-run"], terminal_width=400)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"protocol 'chameleon' reads the training data of protocol 'genimage' (its train_from) from {chameleon}" in message
    assert ("genimage's training generator(s) sdv14 (folder 'stable_diffusion_v_1_4'), split 'train', layout 'genimage': "
            "{generator}/[inner]/{train,val}/{ai,nature}. Point --train-data-root at that data") in message
    assert "Traceback" not in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["image_facts.sqlite"], "a dry run keeps the facts it decoded, nothing else"
    genimage = tmp_path / "GenImage"
    for i, cls in enumerate(("ai", "nature")):
        for j in range(4):
            helpers.write_png(genimage / "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train" / cls / f"{j}.png", seed=100 * i + j)
    result = CliRunner().invoke(app, [*args, "--train-data-root", str(genimage), "--dry-run"], terminal_width=250)
    assert result.exit_code == 0, result.output
    row = " ".join(result.output.split())
    assert "│ tinycnn │ sdv14 │ 0 │ to do: train on 6 images" in row


def test_train_from_chains_and_unknown_cards_are_config_errors(tmp_path):
    cards = _card(tmp_path / "cards", "chained", base="chameleon", train_from="ufd")
    _card(cards, "typo", base="chameleon", train_from="genimag")
    _card(cards, "both", base="chameleon", train=["chameleon"])
    for name, words in [("chained", "'train_from: ufd', but 'ufd' itself trains on 'train_from: forensynths'; chains are not followed"),
                        ("typo", "'train_from: genimag', which is not a usable protocol card: unknown dataset card 'genimag'. Did you mean 'genimage'"),
                        ("both", "sets both 'train' ['chameleon'] and 'train_from: genimage'; keep one")]:
        with pytest.raises(ConfigError, match=f"^protocol '{name}' .*" + re.escape(words)):
            load_benchmark(RunConfig(protocol=name, detectors=["tinycnn"], data_root=tmp_path, protocol_dirs=[cards]))


def test_zero_cells_is_a_clear_error_before_any_run_is_recorded(tmp_path):
    bench = helpers.benchmark(tmp_path / "data")
    bench.recipes = []
    with pytest.raises(ConfigError, match=r"protocol 'tiny' gives nothing to run: no detectors \(pass --detectors a,b"):
        execute(bench, Options(out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    bench = helpers.benchmark(tmp_path / "data")
    bench.subsets.train, bench.subsets.validation = {}, {}
    with pytest.raises(ConfigError, match=r"no training sets \(card 'tiny': 'train' or 'train_from'\)"):
        describe_plan(bench, Store(tmp_path / "out"))
    result = CliRunner().invoke(app, ["run", "--detectors", ",", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "gives nothing to run: no detectors" in result.output, result.output


def test_a_detector_or_seed_listed_twice_is_refused_before_any_run_is_recorded(tmp_path):
    """Both copies would name one checkpoint, whose cells the evaluation would then score and store twice."""
    bench = helpers.benchmark(tmp_path / "data")
    bench.recipes = [helpers.recipe(), helpers.recipe()]
    with pytest.raises(ConfigError, match=r"detector\(s\) \['tinycnn'\] listed more than once with the same recipe"):
        execute(bench, Options(out=tmp_path / "out"))
    bench.recipes = [helpers.recipe(), helpers.recipe("train.lr=0.01")]  # same name, another model: allowed
    describe_plan(bench, Store(tmp_path / "out"))
    bench = helpers.benchmark(tmp_path / "data", seeds=(0, 1, 0))
    with pytest.raises(ConfigError, match=r"seed\(s\) \[0\] listed more than once"):
        describe_plan(bench, Store(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["run", "--detectors", "tinycnn,tinycnn", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "listed more than once" in result.output, result.output


def test_notes_and_exclusions_are_printed_and_recorded(tmp_path):
    root = tmp_path / "tiny"
    for seed, (generator, split, n) in enumerate([("a", "train", 6), ("a", "val", 3), ("b", "val", 3), ("c", "val", 2)]):
        helpers.write_images(root, generator, split, n, n, seed)
    whole = root / "b/val/ai/000.png"
    truncated = root / "b/val/ai/999.png"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    (root / "README.txt").write_text("how the set was made")
    cards = _card(tmp_path / "cards", "tinyp", version=1, layout="genimage", train=["a"], test=["a", "b"],
                  subsample={"per_class": 10, "seed": 0}, not_data=["README.txt"],
                  generators={"a": {"folder": "a", "family": "gan"}, "b": {"folder": "b", "family": "diffusion"}})
    result = CliRunner().invoke(app, ["run", "--protocols", str(cards), "--protocol", "tinyp", "--data-root", str(root),
                                      "--detectors", "tinycnn", "--out", str(tmp_path / "out"), "--bootstrap", "0",
                                      *[x for s in TINY_RUN for x in ("--set", s)]], terminal_width=250)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert (f"data for train and test: {root} (protocol tinyp): 24 images (4 more in generators or splits not read here), "
            "1 file(s) excluded, 1 not data (the card's not_data)") in out  # c's 4 files are never decoded
    assert "README.txt" not in out
    assert "note: folders not in protocol 'tinyp', ignored: ['c']" in out
    assert "note: test a: fewer images than subsample.per_class=10, all kept: {'real': 3, 'fake': 3}" in out
    assert "excluded 1 x decode-failed: b/val/ai/999.png" in out
    store = Store(tmp_path / "out")
    record = json.loads((store.run_dir(store.latest_run_id()) / "record.json").read_text())
    [source] = record["data_sources"]
    assert source["root"] == str(root) and source["roles"] == "train and test"
    assert (source["decoded"], source["unread"]) == (24, 4)
    with sqlite3.connect(store.facts_path()) as facts:  # the next run decodes none of the 25 files it read
        assert facts.execute("SELECT COUNT(*) FROM facts").fetchone() == (25,)
    assert "folders not in protocol 'tinyp', ignored: ['c']" in source["notes"]
    assert source["excluded"] == {"decode-failed": {"count": 1, "first": ["b/val/ai/999.png"]},
                                  "not-data": {"count": 1, "first": ["README.txt"]}}  # recorded, though not printed
