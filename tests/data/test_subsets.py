"""Protocol subsets: validation carved only from training generators, no leaks, seeded rules, card checks."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from mirage_bench.data import build_manifest, check_counts, protocol_subsets
from mirage_bench.errors import DataError
from mirage_bench.protocol import ProtocolCard, load_protocol

# GenImage's eight top folders and inner folders, as the publisher ships them (written by hand).
GENIMAGE_FOLDERS = [
    ("ADM", "imagenet_ai_0508_adm"), ("BigGAN", "imagenet_ai_0419_biggan"), ("glide", "imagenet_glide"),
    ("Midjourney", "imagenet_midjourney"), ("stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4"),
    ("stable_diffusion_v_1_5", "imagenet_ai_0424_sdv5"), ("VQDM", "imagenet_ai_0419_vqdm"), ("wukong", "imagenet_ai_0424_wukong"),
]
KEYS = {"ADM": "adm", "BigGAN": "biggan", "glide": "glide", "Midjourney": "midjourney", "stable_diffusion_v_1_4": "sdv14",
        "stable_diffusion_v_1_5": "sdv15", "VQDM": "vqdm", "wukong": "wukong"}
SD14_TRAIN = 10  # per class


@pytest.fixture
def genimage_root(make_tree):
    paths = []
    for top, inner in GENIMAGE_FOLDERS:
        paths += [f"{top}/{inner}/val/ai/{i:03d}_{top.lower()}_{i:05d}.png" for i in range(3)]
        paths += [f"{top}/{inner}/val/nature/ILSVRC2012_val_{top}_{i:05d}.JPEG" for i in range(3)]
    paths += [f"stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/ai/{i:03d}_sdv4_{i:05d}.png" for i in range(SD14_TRAIN)]
    paths += [f"stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/nature/n0144_{i}.JPEG" for i in range(SD14_TRAIN)]
    return make_tree(paths)


def test_genimage_protocol_subsets(genimage_root):
    card = load_protocol("genimage")
    manifest, exclusions = build_manifest(genimage_root, protocol=card)
    data = protocol_subsets(card, manifest, exclusions)
    assert sorted(data.test) == sorted(KEYS.values())
    for top, key in KEYS.items():
        test = data.test[key]
        assert set(test["split"]) == {"val"} and set(test["generator"]) == {key}
        assert sorted(test["label"]) == [0, 0, 0, 1, 1, 1]
        assert all(p.startswith(f"{top}/") for p in test["rel_path"])
    assert list(data.train) == ["sdv14"] and list(data.validation) == ["sdv14"]
    train, val = data.train["sdv14"], data.validation["sdv14"]
    # 10% of 10 per class = 1 real + 1 fake, from SD v1.4's train split only (GenImage's val is the test set)
    assert sorted(val["label"]) == [0, 1]
    assert set(val["split"]) == {"train"} and set(train["split"]) == {"train"}
    assert set(val["generator"]) == {"sdv14"}
    assert not set(val["image_id"]) & set(train["image_id"])
    assert len(train) + len(val) == 2 * SD14_TRAIN
    assert list(train["rel_path"]) == sorted(train["rel_path"])


def test_no_validation_image_appears_in_any_test_subset(genimage_root):
    # A publisher copy of one SD v1.4 val image inside the train folder: same bytes, another path.
    sd = genimage_root / "stable_diffusion_v_1_4" / "imagenet_ai_0419_sdv4"
    for i in range(SD14_TRAIN):
        shutil.copy(sd / "val/ai" / "000_stable_diffusion_v_1_4_00000.png", sd / "train/ai" / f"dup_{i}.png")
    card = load_protocol("genimage", ["validation.fraction=0.5"])
    manifest, _ = build_manifest(genimage_root, protocol=card)
    data = protocol_subsets(card, manifest)
    test_hashes = set(pd.concat(data.test.values())["sha256"])
    assert not set(data.validation["sdv14"]["sha256"]) & test_hashes
    assert not set(data.train["sdv14"]["sha256"]) & test_hashes
    assert any("identical to a test image" in note for note in data.notes)


def test_validation_is_seeded_and_independent_of_row_order(genimage_root):
    card = load_protocol("genimage", ["validation.fraction=0.3"])
    manifest, _ = build_manifest(genimage_root, protocol=card)
    first = protocol_subsets(card, manifest).validation["sdv14"]
    shuffled = protocol_subsets(card, manifest.sample(frac=1.0, random_state=3)).validation["sdv14"]
    assert list(first["image_id"]) == list(shuffled["image_id"])
    reseeded = [set(protocol_subsets(load_protocol("genimage", ["validation.fraction=0.3", f"validation.seed={s}"]), manifest)
                    .validation["sdv14"]["image_id"]) for s in range(1, 6)]
    assert any(ids != set(first["image_id"]) for ids in reseeded)


def test_subsample_rule_is_seeded_and_recorded(genimage_root):
    card = load_protocol("genimage", ["subsample.per_class=2", "subsample.seed=7"])
    manifest, _ = build_manifest(genimage_root, protocol=card)
    data = protocol_subsets(card, manifest)
    assert all(sorted(t["label"]) == [0, 0, 1, 1] for t in data.test.values())
    again = protocol_subsets(card, manifest.iloc[::-1])
    assert all(list(again.test[k]["image_id"]) == list(data.test[k]["image_id"]) for k in data.test)
    record = data.record()
    assert record["subsample"] == {"per_class": 2, "seed": 7}
    assert record["validation"]["fraction"] == 0.1 and record["protocol"] == "genimage"
    counts = data.counts()
    assert counts[(counts.role == "test") & (counts.generator == "adm")]["images"].tolist() == [2, 2]
    unlimited = protocol_subsets(load_protocol("genimage"), manifest)  # training is never subsampled
    assert len(data.train["sdv14"]) + len(data.validation["sdv14"]) > 4
    assert list(data.train["sdv14"]["image_id"]) == list(unlimited.train["sdv14"]["image_id"])


def test_matrix_mode_keeps_one_training_set_per_generator(make_tree):
    paths = [f"{top}/{inner}/{split}/{cls}/{i}.png" for top, inner in GENIMAGE_FOLDERS
             for split in ("train", "val") for cls in ("ai", "nature") for i in range(2)]
    card = load_protocol("genimage-matrix")
    manifest, _ = build_manifest(make_tree(paths), protocol=card)
    data = protocol_subsets(card, manifest)
    assert sorted(data.train) == sorted(KEYS.values()) == sorted(data.validation) == sorted(data.test)
    for key, train in data.train.items():
        assert set(train["generator"]) == {key} and set(train["split"]) == {"train"}
        assert set(data.validation[key]["generator"]) == {key}


def test_degrade_protocol_tests_sd14_only(genimage_root):
    card = load_protocol("genimage-degrade")
    manifest, _ = build_manifest(genimage_root, protocol=card)
    data = protocol_subsets(card, manifest)
    assert list(data.test) == ["sdv14"] and card.degradations == ["genimage"]


def test_missing_generator_is_refused_naming_it(genimage_root):
    shutil.rmtree(genimage_root / "wukong")
    card = load_protocol("genimage")
    manifest, _ = build_manifest(genimage_root, protocol=card)
    with pytest.raises(DataError, match=r"generator 'wukong' \(folder 'wukong', aliases \['imagenet_ai_0424_wukong'\]\) has no images"):
        protocol_subsets(card, manifest)


def test_missing_split_or_class_is_refused(genimage_root):
    shutil.rmtree(genimage_root / "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/nature")
    card = load_protocol("genimage")
    manifest, _ = build_manifest(genimage_root, protocol=card)
    with pytest.raises(DataError, match="sdv14/train: no real images"):
        check_counts(card, manifest)


def test_counts_contradicting_the_card_are_refused(genimage_root):
    card = load_protocol("genimage", ["generators.adm.expected.val.fake=3", "generators.adm.expected.val.real=5"])
    manifest, exclusions = build_manifest(genimage_root, protocol=card)
    with pytest.raises(DataError, match=r"adm/val real: card expects 5 images, found 3") as info:
        protocol_subsets(card, manifest, exclusions)
    assert "adm/val fake" not in str(info.value)


def test_excluded_files_count_towards_published_counts_but_are_never_scored(genimage_root):
    bad = genimage_root / "ADM/imagenet_ai_0508_adm/val/ai/000_adm_00000.png"
    bad.write_bytes(b"")
    card = load_protocol("genimage", ["generators.adm.expected.val.fake=3"])
    manifest, exclusions = build_manifest(genimage_root, protocol=card)
    data = protocol_subsets(card, manifest, exclusions)
    assert "ADM/imagenet_ai_0508_adm/val/ai/000_adm_00000.png" not in set(data.test["adm"]["rel_path"])
    assert sorted(data.test["adm"]["label"]) == [0, 0, 0, 1, 1]


def test_ufd_pairs_fake_only_sets_with_their_reals(make_tree):
    paths = ["test/progan/car/0_real/0.png", "test/progan/car/1_fake/0.png",
             "diffusion_datasets/guided/1_fake/0.png", "diffusion_datasets/guided/1_fake/1.png",
             "diffusion_datasets/imagenet/0_real/0.png", "diffusion_datasets/laion/0_real/0.png",
             "diffusion_datasets/ldm_200/1_fake/0.png"]
    root = make_tree(paths)
    card = load_protocol("ufd", ["test=[progan,guided,ldm_200]"])
    manifest, _ = build_manifest(root, protocol=card)
    with pytest.raises(DataError, match=r"guided/test fake: card expects 1000 images, found 2"):
        protocol_subsets(card, manifest)
    pins = [f"generators.{k}.expected={{}}" for k in ("guided", "ldm_200", "imagenet", "laion")]
    card = load_protocol("ufd", ["test=[progan,guided,ldm_200]", *pins])
    data = protocol_subsets(card, manifest)
    assert dict(zip(data.test["guided"]["rel_path"], data.test["guided"]["label"])) == {
        "diffusion_datasets/guided/1_fake/0.png": 1, "diffusion_datasets/guided/1_fake/1.png": 1,
        "diffusion_datasets/imagenet/0_real/0.png": 0,
    }
    assert dict(zip(data.test["ldm_200"]["rel_path"], data.test["ldm_200"]["label"])) == {
        "diffusion_datasets/laion/0_real/0.png": 0, "diffusion_datasets/ldm_200/1_fake/0.png": 1,
    }
    assert data.train == {} and card.train_from == "forensynths"


def test_wildrf_validation_from_reddit_train_only(make_tree):
    paths = [f"train/{c}/{i}.jpg" for c in ("0_real", "1_fake") for i in range(5)]
    paths += [f"val/{c}/v{i}.jpg" for c in ("0_real", "1_fake") for i in range(2)]
    paths += [f"test/{p}/{c}/t.jpg" for p in ("reddit", "twitter", "facebook") for c in ("0_real", "1_fake")]
    card = load_protocol("wildrf", ["validation.fraction=0.2"])
    manifest, _ = build_manifest(make_tree(paths), protocol=card)
    data = protocol_subsets(card, manifest)
    assert sorted(data.validation["reddit"]["rel_path"].str.split("/").str[0].unique()) == ["train"]
    assert sorted(data.validation["reddit"]["label"]) == [0, 1]
    assert sorted(data.test) == ["facebook", "reddit", "twitter"]
    assert all(set(t["split"]) == {"test"} for t in data.test.values())


def test_unknown_folders_are_noted_not_scored(genimage_root):
    for cls in ("ai", "nature"):
        (genimage_root / "sdxl/val" / cls).mkdir(parents=True)
        shutil.copy(next((genimage_root / "ADM/imagenet_ai_0508_adm/val" / cls).iterdir()), genimage_root / "sdxl/val" / cls / "x.png")
    card = load_protocol("genimage")
    manifest, _ = build_manifest(genimage_root, protocol=card)
    data = protocol_subsets(card, manifest)
    assert "folders not in protocol 'genimage', ignored: ['sdxl']" in data.notes
    assert "sdxl" not in data.test


def test_a_training_root_is_checked_only_for_what_training_reads(make_tree, genimage_root):
    sd14 = [f"stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/{c}/{i}.png" for c in ("ai", "nature") for i in range(10)]
    root = make_tree(sd14, name="sd14_only")
    card = load_protocol("genimage")
    manifest, exclusions = build_manifest(root, protocol=card)
    with pytest.raises(DataError, match="generator 'midjourney'"):
        protocol_subsets(card, manifest, exclusions)
    test_images = protocol_subsets(card, *build_manifest(genimage_root, protocol=card), roles=("test",))
    assert test_images.train == {} and sorted(test_images.test) == sorted(KEYS.values())
    leaked = manifest["sha256"].iloc[[0, 1]].tolist()  # as if two test images (another root) had these bytes
    data = protocol_subsets(card, manifest, exclusions, roles=("train",), test_sha256=leaked)
    assert data.test == {} and list(data.train) == ["sdv14"]
    assert len(data.train["sdv14"]) + len(data.validation["sdv14"]) == 18
    assert "train sdv14: 2 image(s) identical to a test image removed from training and validation" in data.notes


def test_single_mode_pools_training_generators_without_a_validation_image_in_training(make_tree):
    from mirage_bench.data.subsets import training_sets

    paths = [f"train/{g}/1_fake/{i}.png" for g in ("a", "b") for i in range(10)]
    paths += [f"train/r/0_real/{i}.png" for i in range(10)] + ["test/a/1_fake/t.png", "test/r/0_real/t.png"]
    generators = {"a": {"folder": "a", "family": "gan", "role": "fake", "reals": "r"},
                  "b": {"folder": "b", "family": "gan", "role": "fake", "reals": "r"},
                  "r": {"folder": "r", "family": "real", "role": "real"}}
    card = ProtocolCard(name="pooled", version=1, layout="forensynths", train=["a", "b"], test=["a"], test_split="test",
                        validation={"fraction": 0.3, "seed": 0}, generators=generators)
    manifest, _ = build_manifest(make_tree(paths), protocol=card)
    data = protocol_subsets(card, manifest)
    [(name, (train, validation))] = training_sets(data).items()
    assert name == "a+b" and set(train["generator"]) == {"a", "b", "r"}
    assert not set(train["image_id"]) & set(validation["image_id"])
    assert train["image_id"].is_unique and validation["image_id"].is_unique
    assert len(train) + len(validation) == 30  # every image once: the shared reals are not counted twice
    matrix = training_sets(protocol_subsets(card.model_copy(update={"mode": "matrix"}), manifest))
    assert sorted(matrix) == ["a", "b"] and all(len(t) + len(v) == 20 for t, v in matrix.values())


def test_a_run_decodes_only_the_generators_and_splits_its_roles_read(genimage_root):
    card = load_protocol("genimage")
    for top, inner in GENIMAGE_FOLDERS[:2]:  # train splits of test-only generators: read by no role of the card
        (genimage_root / top / inner / "train/ai/corrupt.png").parent.mkdir(parents=True, exist_ok=True)
        (genimage_root / top / inner / "train/ai/corrupt.png").write_bytes(b"\x89PNG not really")
    (genimage_root / "extra_gen/val/ai").mkdir(parents=True)
    (genimage_root / "extra_gen/val/ai/x.png").write_bytes(b"never decoded")
    full, full_excluded = build_manifest(genimage_root, protocol=card)
    assert len(full_excluded) == 3 and set(full_excluded["kind"]) == {"not-an-image"}  # what `data verify` sees
    tested, excluded = build_manifest(genimage_root, protocol=card, roles=("test",))
    assert set(tested["split"]) == {"val"} and len(tested) == 8 * 6 and excluded.empty
    assert tested.attrs["unread"] == {"files": 2 * SD14_TRAIN + 3, "generators": ["adm", "biggan", "extra_gen", "sdv14"],
                                      "splits": {"adm": ["train"], "biggan": ["train"], "extra_gen": ["val"], "sdv14": ["train"]}}
    test_only = protocol_subsets(card, tested, excluded, roles=("test",))
    everything = protocol_subsets(card, full[full["split"] == "val"].reset_index(drop=True), roles=("test",))
    assert all(test_only.test[k].equals(everything.test[k]) for k in card.test)
    assert "folders not in protocol 'genimage', ignored: ['extra_gen']" in test_only.notes  # named, not decoded
    trained, _ = build_manifest(genimage_root, protocol=card, roles=("train",))
    assert set(zip(trained["generator"], trained["split"])) == {("sdv14", "train")}
