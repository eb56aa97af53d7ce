
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from mirage_bench import metrics as M
from mirage_bench.errors import DataError


def _data(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.5 + 0.2 * (y - 0.5), 0.25), 0, 1)
    return y, np.round(s, 1) if ties else s


def _sk_oracle(y, s):
    cands = np.r_[-1.0, np.unique(s)]
    return max(sk.accuracy_score(y, (s > t).astype(int)) for t in cands)


SK = {
    "acc": lambda y, s, t: sk.accuracy_score(y, s > 0.5),
    "real_acc": lambda y, s, t: np.mean((s <= 0.5)[y == 0]),
    "fake_acc": lambda y, s, t: np.mean((s > 0.5)[y == 1]),
    "acc_cal": lambda y, s, t: sk.accuracy_score(y, s > t),
    "ap": lambda y, s, t: sk.average_precision_score(y, s),
    "auroc": lambda y, s, t: sk.roc_auc_score(y, s),
    "oracle_acc": lambda y, s, t: _sk_oracle(y, s),
}


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("name", M.DEFAULT_METRICS)
def test_point_and_batch_equal_sklearn(name, ties):
    for seed in range(3):
        y, s = _data(57, seed, ties)
        expected = SK[name](y, s, 0.3)
        assert M.compute(name, y, s, threshold=0.3) == pytest.approx(expected, abs=1e-12)
        thr = 0.3 if M.METRICS.get(name).threshold == "calibrated" else 0.5
        everyone = M.Resampled.of(y, s, np.arange(len(y))[None])  # the resample that draws each image once
        assert M.METRICS.get(name).batch(everyone, thr)[0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", M.DEFAULT_METRICS)
def test_batch_of_each_resample_equals_the_point_metric_on_it(name):
    """Counting by distinct score must give what sorting each resample gives, ties and repeats included."""
    y, s = _data(57, 4, ties=True)
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(y), size=(6, len(y)))
    metric = M.METRICS.get(name)
    thr = 0.3 if metric.threshold == "calibrated" else 0.5
    expected = [SK[name](y[i], s[i], 0.3) if len(np.unique(y[i])) == 2 or not metric.needs_both_classes else np.nan
                for i in index]
    np.testing.assert_allclose(M.METRICS.get(name).batch(M.Resampled.of(y, s, index), thr), expected, rtol=0, atol=1e-12)
    whole = M.resampled_values([metric], y, s, index, [thr])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(M, "CHUNK_CELLS", 1)  # a bound that makes every chunk one resample
        np.testing.assert_array_equal(M.resampled_values([metric], y, s, index, [thr]), whole)


def test_single_class_gives_nan_with_warning():
    y, s = np.ones(10, int), np.linspace(0, 1, 10)
    with pytest.warns(UserWarning, match="only one class"):
        assert np.isnan(M.compute("ap", y, s))
    assert np.isnan(M.compute("real_acc", y, s))
    assert M.compute("fake_acc", y, s) == pytest.approx(np.mean(s > 0.5))


@pytest.mark.parametrize("name", ["acc", "ap", "auroc"])
def test_intervals_contain_point_and_narrow_with_n(name):
    widths = []
    for n in (60, 600):
        y, s = _data(n, 1)
        point = M.compute(name, y, s)
        lo, hi = M.bootstrap(name, y, s, n_boot=400)
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] * 0.6


def _frame(labels, scores, **columns) -> pd.DataFrame:
    """Store-shaped predictions of one subset (image ids 0..n-1 within the generator)."""
    base = {"detector": "d", "recipe_hash": "r1", "impl": "reference", "train_generators": "a", "seed": 0, "degradation": "none",
            "generator": "a", "checkpoint_sha256": "c1", "threshold": 0.4, "run_id": "run1", **columns}
    ids = [f"{base['generator']}-{i}" for i in range(len(labels))]
    return pd.DataFrame({**base, "image_id": ids, "label": labels, "p_fake": scores})


def test_subset_metrics_means_and_seeds():
    frames = []
    for seed in (0, 1):
        for g in ("a", "b"):
            y, s = _data(40, seed * 10 + ord(g))
            frames.append(_frame(y, s, seed=seed, generator=g))
    table = M.subset_metrics(pd.concat(frames), ["acc", "ap"], n_boot=50)
    assert len(table) == 2 * 2 * 2
    one = table[(table.seed == 1) & (table.generator == "b") & (table.metric == "ap")]["value"].item()
    y, s = _data(40, 10 + ord("b"))
    assert one == pytest.approx(sk.average_precision_score(y, s))
    with_mean = M.mean_over(table, "generator")
    means = with_mean[with_mean.generator == "mean"]
    acc0 = table[(table.seed == 0) & (table.metric == "acc")]["value"].mean()
    assert means[(means.seed == 0) & (means.metric == "acc")]["value"].item() == pytest.approx(acc0)
    seeds = M.over_seeds(table)
    row = seeds[(seeds.generator == "a") & (seeds.metric == "acc")]
    values = table[(table.generator == "a") & (table.metric == "acc")]["value"]
    assert row["mean"].item() == pytest.approx(values.mean()) and row["std"].item() == pytest.approx(values.std())


def test_subset_metrics_do_not_depend_on_the_thread_count():
    frames = [_frame(*_data(80, 30 + k), generator=g, seed=seed) for k, (g, seed) in enumerate([("a", 0), ("b", 0), ("a", 1), ("b", 1)])]
    frame = pd.concat(frames)
    one = M.subset_metrics(frame, M.DEFAULT_METRICS, n_boot=40, workers=1)
    pd.testing.assert_frame_equal(M.subset_metrics(frame, M.DEFAULT_METRICS, n_boot=40, workers=4), one, check_exact=True)
    assert one[["lo", "hi"]].notna().all().all() and (one["lo"] <= one["hi"]).all()


def test_subset_metrics_keeps_recipes_and_implementations_apart():
    y, s = _data(30, 4)
    frame = pd.concat([_frame(y, s), _frame(y, 1 - s, recipe_hash="r2", checkpoint_sha256="c2", threshold=0.6),
                       _frame(y, s ** 2, impl="fast")])
    table = M.subset_metrics(frame, ["acc", "ap"], n_boot=0)
    assert len(table) == 3 * 2 and set(table.n) == {30}  # every image once per recipe and implementation
    ap = table[table.metric == "ap"].set_index(["recipe_hash", "impl"])["value"]
    assert ap["r1", "reference"] == pytest.approx(sk.average_precision_score(y, s))
    assert ap["r2", "reference"] == pytest.approx(sk.average_precision_score(y, 1 - s))
    assert ap["r1", "fast"] == pytest.approx(sk.average_precision_score(y, s ** 2))


def test_subset_metrics_refuses_an_image_counted_twice():
    y, s = _data(10, 5)
    frame = pd.concat([_frame(y, s), _frame(y, s, run_id="run2")])
    with pytest.raises(DataError, match=r"10 images are scored more than once .*20 predictions of 10 images, runs run1, run2"):
        M.subset_metrics(frame, ["acc"], n_boot=0)


def test_subset_metrics_refuses_two_checkpoints_in_one_subset():
    y, s = _data(10, 6)
    frame = pd.concat([_frame(y[:5], s[:5]), _frame(y[5:], s[5:], checkpoint_sha256="c2", run_id="run2").assign(
        image_id=lambda f: f.image_id + "x")])
    with pytest.raises(DataError, match=r"2 checkpoints \(c1, c2\) in runs run1, run2; .*pass the run ids"):
        M.subset_metrics(frame, ["acc"], n_boot=0)


def test_subset_metrics_names_the_columns_it_lacks():
    y, s = _data(10, 7)
    with pytest.raises(DataError, match=r"lacks the columns \['impl', 'recipe_hash'\]"):
        M.subset_metrics(_frame(y, s).drop(columns=["recipe_hash", "impl"]), ["acc"], n_boot=0)


def _one_class_table():
    """Subset g1 (2 reals, 2 fakes) and g2 (fakes only): AP is defined on g1 only."""
    frame = pd.concat([_frame([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], generator="g1"),
                       _frame([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], generator="g2")])
    with pytest.warns(UserWarning, match="only one class"):
        return M.subset_metrics(frame, ["acc", "ap"], n_boot=0)


def test_a_mean_over_an_undefined_subset_is_undefined_with_a_warning():
    table = _one_class_table()
    with pytest.warns(UserWarning, match=r"mean over generator on .*metric=ap is undefined: no value \(NaN\) for generator \['g2'\]"):
        means = M.mean_over(table, "generator")
    mean = means[means.generator == "mean"].set_index("metric")["value"]
    assert mean["acc"] == pytest.approx(0.5) and np.isnan(mean["ap"])  # never AP 1.0 from g1 alone
    with pytest.warns(UserWarning, match=r"no value \(NaN\) for generator \['g2'\]"):
        families = M.family_means(table, pd.DataFrame({"generator": ["g1", "g2"], "family": ["gan", "gan"]}))
    assert np.isnan(families.set_index("metric").loc["ap", "value"])


def test_a_mean_over_seeds_with_an_undefined_seed_is_undefined():
    table = pd.DataFrame({"detector": "d", "generator": "g1", "metric": "acc_cal", "seed": [0, 1], "value": [0.8, np.nan],
                          "lo": np.nan, "hi": np.nan, "n": 4})
    with pytest.warns(UserWarning, match=r"no value \(NaN\) for seed \['1'\]"):
        seeds = M.over_seeds(table)
    assert np.isnan(seeds["mean"].item()) and np.isnan(seeds["std"].item()) and seeds["seeds"].item() == 2
