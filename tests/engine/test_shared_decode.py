"""Models scored together share one decode per image, and each gets exactly the logits it gets alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import helpers
from mirage_bench.degradations import parse
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.engine import runner
from mirage_bench.scoring import FastScorer, ReferenceScorer, reference
from mirage_bench.scoring.scorer import distinct_specs
from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import ContractError
from mirage_bench.store import Store

GRID = ["none", "blur(s=1)", "jpeg(q=50)", "downscale(size=14)"]


def _models() -> list:
    """Two models that read images alike and one that reads them through another spec (resize, then crop)."""
    torch.manual_seed(0)
    return [build_tiny("tinycnn", ["input.size=16"]).eval(), build_tiny("tinycnn", ["input.size=16"]).eval(),
            build_tiny("tinycnn", ["input.size=12", "input.resize=14"]).eval()]


def _counting(monkeypatch, module, name: str) -> list[str]:
    opened: list[str] = []
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda path, *args: opened.append(str(path)) or original(path, *args))
    return opened


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
def test_models_scored_together_decode_once_and_match_each_alone(tmp_path, monkeypatch, fast):
    from mirage_bench.scoring import decoded_grid

    manifest = helpers.write_images(tmp_path, "g1", "val", 4, 3, seed=5)
    degradations = [parse(s) for s in GRID]
    models = _models()
    opened = _counting(monkeypatch, decoded_grid if fast else reference, "open_rgb")
    scorer = (FastScorer if fast else ReferenceScorer)("cpu", batch_size=3, workers=0)
    together = scorer.score(models, manifest, degradations)
    assert len(opened) == len(manifest)  # one decode per image for three models and four degradations
    for model, scores in zip(models, together):
        alone = scorer.score_one(model, manifest, degradations)
        assert np.array_equal(scores.logits, alone.logits) and np.array_equal(scores.seeds, alone.seeds)
    assert not np.array_equal(together[0].logits, together[1].logits)  # three models, not one scored thrice


def test_distinct_specs_index_each_model():
    models = _models()
    specs, index = distinct_specs(models)
    assert index == [0, 0, 1] and specs == [models[0].input_spec, models[2].input_spec]


def _two_model_benchmark(root):
    bench = helpers.benchmark(root)
    return replace(bench, recipes=[helpers.recipe(), helpers.recipe("train.lr=0.01")])


def _recorder():
    seen: list[tuple[str, int]] = []

    def progress(description: str, total: int):
        seen.append((description, total))
        return lambda n: None

    return seen, progress


def _predictions(out) -> pd.DataFrame:
    frame = Store(out).read_predictions().drop(columns="run_id")
    return frame.sort_values(["cell_id", "image_id"], ignore_index=True)


def test_a_run_scores_all_subsets_in_one_pass_for_all_models_with_the_logits_of_separate_runs(tmp_path, monkeypatch):
    bench = _two_model_benchmark(tmp_path / "data")
    seen, progress = _recorder()
    loads = _counting(monkeypatch, runner, "load_checkpoint")
    record = execute(bench, Options(out=tmp_path / "together"), progress=progress)
    scoring = [(d, n) for d, n in seen if d.startswith("score")]
    assert scoring == [("score 2 models on g1, g2", (9 + 7) * 2 * 2)]  # one loader for both subsets
    assert len(loads) == 2  # each checkpoint loaded once for both subsets
    monkeypatch.undo()
    assert all(c.computed_in_this_run and c.seconds > 0 for c in record.eval_cells)
    # the record lists cells model by model, as before
    assert [c.train_cell_id for c in record.eval_cells] == [c.cell_id for c in record.train_cells for _ in range(4)]
    for k, recipe in enumerate(bench.recipes):
        execute(replace(bench, recipes=[recipe]), Options(out=tmp_path / f"alone{k}"))
    alone = pd.concat([_predictions(tmp_path / f"alone{k}") for k in range(2)]).sort_values(["cell_id", "image_id"], ignore_index=True)
    pd.testing.assert_frame_equal(_predictions(tmp_path / "together"), alone)


def test_passes_hold_at_most_the_model_byte_budget(tmp_path, monkeypatch):
    bench = _two_model_benchmark(tmp_path / "data")
    monkeypatch.setattr(runner, "PASS_MODEL_BYTES", 1)  # every model opens a pass of its own
    seen, progress = _recorder()
    execute(bench, Options(out=tmp_path / "apart"), progress=progress)
    scoring = [d for d, _ in seen if d.startswith("score")]
    assert scoring == ["score tinycnn/g1/s0 on g1, g2"] * 2  # model by model
    monkeypatch.undo()
    execute(bench, Options(out=tmp_path / "together"))
    pd.testing.assert_frame_equal(_predictions(tmp_path / "apart"), _predictions(tmp_path / "together"))


def test_a_model_with_non_finite_logits_is_refused_and_the_others_of_its_pass_are_stored(tmp_path, monkeypatch):
    bench = _two_model_benchmark(tmp_path / "data")
    first, second = (c.checkpoint_sha256 for c in execute(bench, Options(out=tmp_path / "out"), evaluate=False).train_cells)
    original = ReferenceScorer.score

    def poisoned(self, detectors, manifest, degradations, **kwargs):
        scored = original(self, detectors, manifest, degradations, **kwargs)
        scored[1].logits[0, 1] = np.nan  # the second model, on an image of g1 only
        return scored

    monkeypatch.setattr(ReferenceScorer, "score", poisoned)
    with pytest.raises(ContractError, match="gave non-finite logits .* 1 of 9 images of test subset 'g1' under degradation 'none'"):
        execute(bench, Options(out=tmp_path / "out"))
    stored = Store(tmp_path / "out").read_predictions()
    assert set(zip(stored["checkpoint_sha256"], stored["generator"])) == {(first, "g1"), (first, "g2"), (second, "g2")}
    assert sorted(stored["degradation"].unique()) == ["jpeg(q=50)", "none"]


def _univfd(head_seed: int, tower_nudge: float = 0.0):
    """A tiny UnivFD: the random tower comes from a fixed init seed (so two builds hold bit-equal towers); the
    head from ``head_seed``; ``tower_nudge`` makes the tower differ."""
    detector = build_tiny("univfd")
    torch.manual_seed(head_seed)
    with torch.no_grad():
        detector.fc.weight.normal_(0, 0.5)
        next(iter(detector.encoder.parameters())).add_(tower_nudge)
    return detector.eval()


def test_trunks_group_the_models_that_hold_one_frozen_encoder():
    from mirage_bench.scoring.trunks import model_trunks, same_frozen_encoder

    cnn = build_tiny("tinycnn", ["input.size=32"]).eval()
    models = [_univfd(0), _univfd(1), cnn, _univfd(2, tower_nudge=1e-3), _univfd(3)]
    trunks = model_trunks(models, [0] * len(models))
    assert [[k for k, _ in t.heads] for t in trunks] == [[0, 1, 4], [2], [3]]
    assert trunks[1].encode is cnn  # a model without a frozen encoder runs its own forward
    assert not same_frozen_encoder(models[0], models[3]) and not same_frozen_encoder(models[0], cnn)
    assert len(model_trunks(models[:2], [0, 0], keys=[True, False])) == 2  # another autocast: another encoding


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
def test_models_sharing_a_frozen_encoder_run_it_once_and_get_their_own_logits(tmp_path, monkeypatch, fast):
    from mirage_bench.detectors.univfd import UnivFD

    manifest = helpers.write_images(tmp_path, "g1", "val", 4, 3, seed=6)
    degradations = [parse(s) for s in GRID]
    models = [_univfd(k) for k in range(3)]
    scorer = (FastScorer if fast else ReferenceScorer)("cpu", batch_size=3, workers=0)

    def scored(group):
        return scorer.score(group, manifest, degradations)

    alone = [scored([model])[0].logits for model in models]
    calls: list[int] = []
    encode = UnivFD.encode
    monkeypatch.setattr(UnivFD, "encode", lambda self, images: calls.append(len(images)) or encode(self, images))
    together = [s.logits for s in scored(models)]
    assert sum(calls) == len(manifest) * len(degradations)  # every image once per degradation, not once per model
    for mine, theirs in zip(together, alone):
        assert np.array_equal(mine, theirs)
    assert not np.array_equal(together[0], together[1])  # three heads, three sets of logits


def test_adopting_bit_equal_frozen_weights_keeps_one_copy_and_every_output():
    from mirage_bench.detectors.base import held_bytes
    from mirage_bench.scoring.trunks import adopt_frozen

    a, b, nudged = _univfd(0), _univfd(1), _univfd(2, tower_nudge=1e-3)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        before = b(x)
    assert not adopt_frozen(nudged, [a]) and nudged.encoder is not a.encoder
    assert not adopt_frozen(build_tiny("tinycnn"), [build_tiny("tinycnn")])  # nothing frozen to share
    assert adopt_frozen(b, [nudged, a]) and b.encoder is a.encoder
    with torch.no_grad():
        assert torch.equal(b(x), before)
    head = sum(p.numel() * p.element_size() for p in b.parameters())
    assert held_bytes([a, b]) == held_bytes([a]) + head
    torch.manual_seed(0)
    m1, m2 = build_tiny("mirage").eval(), build_tiny("mirage").eval()  # prompts train, CLIP is frozen: still one copy
    with torch.no_grad():
        before = m2(x)
        assert adopt_frozen(m2, [m1]) and m2.clip is m1.clip and torch.equal(m2(x), before)


def test_a_pass_counts_a_shared_frozen_backbone_once(tmp_path, monkeypatch):
    from mirage_bench.cards import load_recipe
    from mirage_bench.detectors.univfd import UnivFD

    from mirage_bench.detectors.base import held_bytes

    bench = helpers.benchmark(tmp_path / "data", seeds=(0, 1, 2))
    bench = replace(bench, recipes=[load_recipe("univfd", [*UnivFD.tiny_overrides, "train.epochs=1"])])
    one_model = held_bytes([_univfd(0)])
    monkeypatch.setattr(runner, "PASS_MODEL_BYTES", int(one_model * 1.5))  # room for one tower, not two
    seen, progress = _recorder()
    execute(bench, Options(out=tmp_path / "out"), progress=progress)
    assert [d for d, _ in seen if d.startswith("score")] == ["score 3 models on g1, g2"]


def test_a_pass_charges_each_model_its_own_forwards_and_an_equal_share_of_the_rest():
    from mirage_bench.scoring.timing import cell_seconds, model_seconds

    forward = model_seconds([3.0, 1.0], [[0, 2], [1]], 3)  # a shared encoder's time is split among its models
    assert forward == [1.5, 1.0, 1.5]
    assert cell_seconds(10.0, forward, 2) == [(2.0 + 1.5) / 2, (2.0 + 1.0) / 2, (2.0 + 1.5) / 2]
    assert cell_seconds(1.0, [0.8, 0.7], 1) == [0.8, 0.7]  # clocks that disagree never make a share negative


def test_the_slow_model_of_a_pass_records_the_slower_cells(tmp_path, monkeypatch):
    """The leaderboard's images/s per detector comes from these seconds: a shared pass must not average a slow
    model with a fast one."""
    import time

    from mirage_bench.detectors.tinycnn import TinyCNN

    bench = _two_model_benchmark(tmp_path / "data")
    slow_lr = bench.recipes[1].train.lr
    forward = TinyCNN.forward

    def timed(self, images):
        if not self.training and self.recipe.train.lr == slow_lr:
            time.sleep(0.25)  # far above a tiny forward's time, even on a loaded 2-core machine
        return forward(self, images)

    execute(bench, Options(out=tmp_path / "out"), evaluate=False)
    monkeypatch.setattr(TinyCNN, "forward", timed)
    record = execute(bench, Options(out=tmp_path / "out"))
    fast_cell, slow_cell = (c.cell_id for c in record.train_cells)
    seconds = {cell: sum(c.seconds for c in record.eval_cells if c.train_cell_id == cell) for cell in (fast_cell, slow_cell)}
    # the slow model sleeps 0.25 s in each of its 2 forwards (one pass over both subsets' 16 images: 2
    # degradations x 1 batch); their compute is alike and tiny, and the shared work is charged to both alike
    assert seconds[slow_cell] - seconds[fast_cell] >= 0.75 * 2 * 0.25


def test_the_model_budget_leaves_two_thirds_of_a_small_device_to_the_forwards(monkeypatch):
    from mirage_bench import machine

    for total, budget in [(12 * 10**9, 4 * 10**9), (80 * 2**30, runner.PASS_MODEL_BYTES), (None, runner.PASS_MODEL_BYTES)]:
        monkeypatch.setattr(runner, "memory_bytes", lambda device, total=total: total)
        assert runner.pass_model_bytes("cuda:0") == budget
    monkeypatch.undo()
    assert 0 < machine.memory_bytes("cpu")  # this machine's RAM, read without torch


def test_a_run_on_the_fast_path_scores_all_models_in_one_pass_close_to_the_reference(tmp_path):
    """The engine's fast path on a CPU (as on CUDA, less the device): one pass for both subsets, each model's cells
    stored with the implementation that made them, scores within the fast path's tolerance of the reference."""
    bench = _two_model_benchmark(tmp_path / "data")
    seen, progress = _recorder()
    execute(bench, Options(out=tmp_path / "fast", impl="fast", workers=0), progress=progress)
    assert [d for d, _ in seen if d.startswith("score")] == ["score 2 models on g1, g2"]
    execute(bench, Options(out=tmp_path / "reference"))
    fast, reference = _predictions(tmp_path / "fast"), _predictions(tmp_path / "reference")
    assert set(fast["impl"]) == {"fast:pil+cpu-degrade+cpu-preprocess", "fast:pil+cpu-ref-degrade+cpu-preprocess"}
    key = ["checkpoint_sha256", "degradation", "image_id"]
    both = fast.merge(reference, on=key, suffixes=("_fast", "_reference"))
    assert len(both) == len(fast) == len(reference) == 2 * (9 + 7) * 2
    assert np.abs(both["logit_fast"] - both["logit_reference"]).max() < 0.05


def _shared_reals_benchmark(root):
    """g3 is fake-only and takes g1's reals, as UniversalFakeDetect's diffusion subsets share LAION's."""
    from mirage_bench.protocol import ProtocolCard

    bench = helpers.benchmark(root)
    g1 = bench.subsets.test["g1"]
    g3 = pd.concat([helpers.write_images(root, "g3", "val", 0, 3, 5), g1[g1["label"] == 0]]).sort_values("rel_path", ignore_index=True)
    generators = {g: {"folder": g, "family": "gan" if g == "g1" else "diffusion"} for g in ("g1", "g2")}
    card = ProtocolCard(name="tiny-paired", version=1, layout="genimage", train=["g1"], test=["g1", "g2", "g3"],
                        generators={**generators, "g3": {"folder": "g3", "family": "diffusion", "role": "fake", "reals": "g1"}})
    return replace(bench, protocol=card, subsets=replace(bench.subsets, test={**bench.subsets.test, "g3": g3}))


def test_a_pass_scores_an_image_that_several_subsets_list_once(tmp_path, monkeypatch):
    """Each image is decoded and scored once per pass however many test subsets list it, and every subset's cells
    hold all of its images with the logits of a run that scores that subset alone."""
    bench = _shared_reals_benchmark(tmp_path / "data")
    execute(bench, Options(out=tmp_path / "together"), evaluate=False)
    opened = _counting(monkeypatch, reference, "open_rgb")
    seen, progress = _recorder()
    record = execute(bench, Options(out=tmp_path / "together"), progress=progress)
    union = pd.concat(bench.subsets.test.values())["image_id"].nunique()
    assert union == 9 + 7 + 3 and len(opened) == union  # g1's 5 reals decoded once for g1 and g3
    assert [(d, n) for d, n in seen if d.startswith("score")] == [("score tinycnn/g1/s0 on g1, g2, g3", union * 2)]
    assert {c.generator: c.images for c in record.eval_cells} == {"g1": 9, "g2": 7, "g3": 8}
    monkeypatch.undo()
    for generator in bench.protocol.test:
        alone = replace(bench, protocol=bench.protocol.model_copy(update={"test": [generator]}))
        execute(alone, Options(out=tmp_path / f"alone-{generator}"))
    together = _predictions(tmp_path / "together")
    separately = pd.concat([_predictions(tmp_path / f"alone-{g}") for g in bench.protocol.test]).sort_values(["cell_id", "image_id"],
                                                                                                         ignore_index=True)
    pd.testing.assert_frame_equal(together, separately)
    assert len(together) == (9 + 7 + 8) * 2


def test_subsets_that_need_other_degradations_get_passes_of_their_own(tmp_path):
    """After a run that stored g1's clean cell only, g1 needs the JPEG cell and g2 both: two passes, and the cell
    stored before is not scored again."""
    bench = helpers.benchmark(tmp_path / "data")
    out = tmp_path / "out"
    execute(replace(bench, protocol=bench.protocol.model_copy(update={"test": ["g1"]}), degradations=bench.degradations[:1]),
            Options(out=out))
    seen, progress = _recorder()
    record = execute(bench, Options(out=out), progress=progress)
    assert [(d, n) for d, n in seen if d.startswith("score")] == [("score tinycnn/g1/s0 on g1", 9), ("score tinycnn/g1/s0 on g2", 7 * 2)]
    assert [c.computed_in_this_run for c in record.eval_cells] == [False, True, True, True]


def test_the_union_of_subsets_refuses_repeated_ids_and_one_id_for_two_files(tmp_path):
    from mirage_bench.engine.runner import union_of
    from mirage_bench.errors import DataError

    bench = _shared_reals_benchmark(tmp_path / "data")
    g1, g3 = bench.subsets.test["g1"], bench.subsets.test["g3"]
    union = union_of({"g1": g1, "g3": g3})
    assert union["image_id"].tolist() == [*g1["image_id"], *g3.loc[g3["label"] == 1, "image_id"]]  # the shared reals once
    assert list(union.columns) == list(g1.columns)
    with pytest.raises(DataError, match="test subset 'g3' lists image ids more than once"):
        union_of({"g1": g1, "g3": pd.concat([g3, g3.head(1)])})
    moved = g3.assign(path=g3["path"].where(g3["label"] == 1, g3["path"] + ".copy"))
    with pytest.raises(DataError, match="test subsets give one image id to different files .*'subset': 'g1'"):
        union_of({"g1": g1, "g3": moved})
