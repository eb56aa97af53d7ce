"""Every layout read from hand-written publisher paths: labels, generators, splits and detection."""

from __future__ import annotations

import json

import pytest

from mirage_bench.data import build_manifest
from mirage_bench.data.layouts import LAYOUTS, detect_layout
from mirage_bench.errors import DataError
from mirage_bench.protocol import load_protocol


def facts(manifest) -> dict[str, tuple[int, str, str]]:
    return {r.rel_path: (r.label, r.generator, r.split) for r in manifest.itertuples()}


# GenImage as distributed: {generator}/{inner}/{train,val}/{ai,nature}; BigGAN here lacks the inner folder.
GENIMAGE = {
    "ADM/imagenet_ai_0508_adm/train/ai/0_adm_1.PNG": (1, "adm", "train"),
    "ADM/imagenet_ai_0508_adm/train/nature/n01440764_10026.JPEG": (0, "adm", "train"),
    "ADM/imagenet_ai_0508_adm/val/ai/1000_adm_163.PNG": (1, "adm", "val"),
    "ADM/imagenet_ai_0508_adm/val/nature/ILSVRC2012_val_00000001.JPEG": (0, "adm", "val"),
    "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/ai/000_sdv4_00000.png": (1, "sdv14", "train"),
    "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/train/nature/n01443537_1000.JPEG": (0, "sdv14", "train"),
    "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/val/ai/001_sdv4_00007.png": (1, "sdv14", "val"),
    "stable_diffusion_v_1_4/imagenet_ai_0419_sdv4/val/nature/ILSVRC2012_val_00000002.JPEG": (0, "sdv14", "val"),
    "glide/imagenet_glide/val/ai/GLIDE_1000_200_08_808_glide_00000.png": (1, "glide", "val"),
    "glide/imagenet_glide/val/nature/ILSVRC2012_val_00000003.JPEG": (0, "glide", "val"),
    "BigGAN/val/ai/000_biggan_00094.png": (1, "biggan", "val"),
    "BigGAN/val/nature/ILSVRC2012_val_00000004.JPEG": (0, "biggan", "val"),
}


def test_genimage_with_card(make_tree):
    root = make_tree(list(GENIMAGE))
    manifest, exclusions = build_manifest(root, protocol=load_protocol("genimage"))
    assert facts(manifest) == GENIMAGE
    assert exclusions.empty
    assert manifest.attrs["layout"] == "genimage"
    assert set(manifest["family"]) == {"diffusion", "gan"}
    assert list(manifest["rel_path"]) == sorted(GENIMAGE)


def test_genimage_without_card_keeps_top_folder_names(make_tree):
    root = make_tree(list(GENIMAGE))
    manifest, _ = build_manifest(root)
    assert set(manifest["generator"]) == {"ADM", "stable_diffusion_v_1_4", "glide", "BigGAN"}
    assert set(manifest["family"]) == {"unknown"}


def test_genimage_root_at_one_generator_or_inner_folder(make_tree):
    root = make_tree([p for p in GENIMAGE if p.startswith("stable_diffusion_v_1_4/")])
    card = load_protocol("genimage")
    for base in (root / "stable_diffusion_v_1_4", root / "stable_diffusion_v_1_4" / "imagenet_ai_0419_sdv4"):
        manifest, _ = build_manifest(base, protocol=card)
        assert set(manifest["generator"]) == {"sdv14"}
        assert sorted(zip(manifest["split"], manifest["label"])) == [("train", 0), ("train", 1), ("val", 0), ("val", 1)]


def test_mini_benchmark_layout_without_inner_folder(make_tree):
    # The built-in mini benchmark writes ROOT/{generator}/{train,val}/{ai,nature}/*.png.
    paths = {
        "gen_a/train/ai/000000.png": (1, "gen_a", "train"),
        "gen_a/train/nature/000000.png": (0, "gen_a", "train"),
        "gen_b/val/ai/000001.png": (1, "gen_b", "val"),
        "gen_b/val/nature/000001.png": (0, "gen_b", "val"),
    }
    manifest, _ = build_manifest(make_tree(list(paths)), layout="genimage")
    assert facts(manifest) == paths


# ForenSynths / CNNDetection: train/{class}/..., val/{class}/..., test/{generator}/[{class}/]...
FORENSYNTHS = {
    "train/airplane/0_real/00000.png": (0, "progan", "train"),
    "train/airplane/1_fake/00000.png": (1, "progan", "train"),
    "train/horse/0_real/00003.png": (0, "progan", "train"),
    "train/horse/1_fake/00003.png": (1, "progan", "train"),
    "val/car/0_real/00010.png": (0, "progan", "val"),
    "val/car/1_fake/00010.png": (1, "progan", "val"),
    "test/progan/airplane/0_real/00100.png": (0, "progan", "test"),
    "test/progan/airplane/1_fake/00100.png": (1, "progan", "test"),
    "test/stylegan/bedroom/0_real/00200.png": (0, "stylegan", "test"),
    "test/stylegan/car/1_fake/00201.png": (1, "stylegan", "test"),
    "test/biggan/0_real/00300.png": (0, "biggan", "test"),
    "test/biggan/1_fake/00300.png": (1, "biggan", "test"),
    "test/seeingdark/0_real/10003.png": (0, "sitd", "test"),
    "test/seeingdark/1_fake/10003.png": (1, "sitd", "test"),
}


def test_forensynths_with_card(make_tree):
    root = make_tree(list(FORENSYNTHS))
    manifest, exclusions = build_manifest(root, protocol=load_protocol("forensynths"))
    assert facts(manifest) == FORENSYNTHS
    assert exclusions.empty
    sources = dict(zip(manifest["rel_path"], manifest["source"]))
    assert sources["train/horse/1_fake/00003.png"] == "horse"
    assert sources["test/stylegan/car/1_fake/00201.png"] == "car"
    assert sources["test/biggan/1_fake/00300.png"] == ""


def test_forensynths_generator_folder_at_root_and_without_split(make_tree):
    paths = {
        "progan/cat/0_real/a.png": (0, "progan", "test"),
        "progan/cat/1_fake/a.png": (1, "progan", "test"),
        "gaugan/0_real/b.png": (0, "gaugan", "test"),
        "gaugan/1_fake/b.png": (1, "gaugan", "test"),
    }
    manifest, _ = build_manifest(make_tree(list(paths)))
    assert facts(manifest) == paths
    assert manifest.attrs["layout"] == "forensynths"


UFD = {
    "test/progan/car/0_real/00000.png": (0, "progan", "test"),
    "test/progan/car/1_fake/00000.png": (1, "progan", "test"),
    "diffusion_datasets/guided/1_fake/00000.png": (1, "guided", "test"),
    "diffusion_datasets/imagenet/0_real/00000.png": (0, "imagenet", "test"),
    "diffusion_datasets/laion/0_real/00000.png": (0, "laion", "test"),
    "diffusion_datasets/laion/0_real/00001.png": (0, "laion", "test"),
    "diffusion_datasets/ldm_200/1_fake/00000.png": (1, "ldm_200", "test"),
    "diffusion_datasets/dalle/1_fake/00000.png": (1, "dalle", "test"),
}


def test_ufd_separate_real_and_fake_roots(make_tree):
    root = make_tree(list(UFD))
    manifest, _ = build_manifest(root, protocol=load_protocol("ufd"))
    assert facts(manifest) == UFD


WILDRF = {
    "train/0_real/1a2b.jpg": (0, "reddit", "train"),
    "train/1_fake/3c4d.png": (1, "reddit", "train"),
    "val/0_real/5e6f.jpg": (0, "reddit", "val"),
    "val/1_fake/7a8b.png": (1, "reddit", "val"),
    "test/reddit/0_real/r1.jpg": (0, "reddit", "test"),
    "test/reddit/1_fake/r2.jpg": (1, "reddit", "test"),
    "test/twitter/0_real/t1.jpg": (0, "twitter", "test"),
    "test/twitter/1_fake/t2.jpg": (1, "twitter", "test"),
    "test/facebook/0_real/f1.jpg": (0, "facebook", "test"),
    "test/facebook/1_fake/f2.jpg": (1, "facebook", "test"),
}


@pytest.mark.parametrize("card", [None, "wildrf"])
def test_wildrf(make_tree, card):
    root = make_tree(list(WILDRF))
    manifest, _ = build_manifest(root, protocol=load_protocol(card) if card else None)
    assert facts(manifest) == WILDRF
    assert manifest.attrs["layout"] == "wildrf"  # not forensynths, although it has 0_real/1_fake folders


SYNTHBUSTER = {
    "RAISE/r000da54ft.tif": (0, "raise", "test"),
    "RAISE/r001d260dt.tif": (0, "raise", "test"),
    "dalle2/r000da54ft.png": (1, "dalle2", "test"),
    "midjourney-v5/r000da54ft.png": (1, "midjourney_v5", "test"),
    "stable-diffusion-xl/r001d260dt.png": (1, "sdxl", "test"),
}


def test_synthbuster(make_tree):
    root = make_tree(list(SYNTHBUSTER))
    manifest, _ = build_manifest(root, protocol=load_protocol("synthbuster"))
    assert facts(manifest) == SYNTHBUSTER
    assert set(manifest[manifest["label"] == 0]["format"]) == {"TIFF"}
    bare, _ = build_manifest(root)
    assert dict(zip(bare["rel_path"], bare["label"])) == {p: v[0] for p, v in SYNTHBUSTER.items()}


def test_chameleon(make_tree):
    paths = {"test/0_real/00a1.jpg": (0, "chameleon", "test"), "test/1_fake/00b2.png": (1, "chameleon", "test")}
    manifest, _ = build_manifest(make_tree(list(paths), name="anything"), protocol=load_protocol("chameleon"))
    assert facts(manifest) == paths


def test_realfake(make_tree):
    paths = {
        "fake/sdxl/0001.png": (1, "sdxl", "test"),
        "fake/0002.png": (1, "fake", "test"),
        "real/laion/0003.jpg": (0, "laion", "test"),
        "real/0004.jpg": (0, "real", "test"),
    }
    manifest, _ = build_manifest(make_tree(list(paths)))
    assert facts(manifest) == paths
    assert manifest.attrs["layout"] == "realfake"


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_manifest_file(make_tree, suffix):
    root = make_tree(["imgs/a.png", "imgs/b c.jpg", "more/d.png"], name="listed")
    rows = [
        {"path": "imgs/a.png", "label": "fake", "generator": "sora", "split": "test", "family": "diffusion", "source": "web"},
        {"path": "imgs/b c.jpg", "label": "0", "generator": "coco", "split": "", "family": "", "source": ""},
        {"path": str(root / "more" / "d.png"), "label": "1", "generator": "sora", "split": "train", "family": "diffusion", "source": ""},
        {"path": "../outside.png", "label": "1", "generator": "sora", "split": "test", "family": "", "source": ""},
        {"path": "imgs/missing.png", "label": "1", "generator": "sora", "split": "test", "family": "", "source": ""},
    ]
    (root.parent / "outside.png").write_bytes((root / "imgs/a.png").read_bytes())
    listing = root / f"manifest.{suffix}"
    if suffix == "csv":
        header = list(rows[0])
        listing.write_text("\n".join([",".join(header)] + [",".join(r[k] for k in header) for r in rows]) + "\n")
    else:
        listing.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    manifest, exclusions = build_manifest(root)
    assert manifest.attrs["layout"] == "manifest"
    assert facts(manifest) == {
        "imgs/a.png": (1, "sora", "test"),
        "imgs/b c.jpg": (0, "coco", "test"),
        "more/d.png": (1, "sora", "train"),
    }
    assert dict(zip(manifest["rel_path"], manifest["family"])) == {"imgs/a.png": "diffusion", "imgs/b c.jpg": "unknown", "more/d.png": "diffusion"}
    assert dict(zip(exclusions["rel_path"], exclusions["kind"])) == {"../outside.png": "outside-root", "imgs/missing.png": "missing"}
    # the list file itself may be the root, too
    manifest2, _ = build_manifest(listing)
    assert list(manifest2["rel_path"]) == list(manifest["rel_path"])


def test_manifest_file_bad_label_names_the_line(tmp_path):
    listing = tmp_path / "manifest.csv"
    listing.write_text("path,label,generator\na.png,1,x\nb.png,maybe,x\n")
    with pytest.raises(DataError, match=r"manifest.csv:3: label 'maybe' is not one of 0, 1, real, fake"):
        build_manifest(listing)


def test_detection_names_what_it_found(make_tree):
    root = make_tree(list(GENIMAGE))
    # shallowest evidence first: BigGAN has no inner folder
    assert detect_layout(root) == ("genimage", "BigGAN/val/ai")


def test_ambiguous_folder_lists_the_candidates(make_tree):
    root = make_tree(["ADM/train/ai/a.png", "progan/0_real/b.png"])
    with pytest.raises(DataError, match="ambiguous data layout") as info:
        build_manifest(root)
    assert "genimage (found ADM/train/ai)" in str(info.value)
    assert "forensynths (found progan/0_real)" in str(info.value)
    manifest, exclusions = build_manifest(root, layout="genimage")  # an explicit layout settles it
    assert list(manifest["rel_path"]) == ["ADM/train/ai/a.png"]
    assert dict(zip(exclusions["rel_path"], exclusions["kind"])) == {"progan/0_real/b.png": "outside-layout"}


def test_unknown_layout_folder_and_name(make_tree, tmp_path):
    root = make_tree(["photos/a.png"])
    with pytest.raises(DataError, match="no known data layout found.*genimage: "):
        build_manifest(root)
    with pytest.raises(Exception, match="Did you mean 'genimage'"):
        build_manifest(root, layout="genimag")
    with pytest.raises(DataError, match="does not exist"):
        build_manifest(tmp_path / "nowhere")


def test_card_layout_contradicting_the_folder_is_refused(make_tree):
    root = make_tree(list(WILDRF))
    with pytest.raises(DataError, match="looks like layout 'wildrf'.*protocol 'genimage' expects 'genimage'"):
        build_manifest(root, protocol=load_protocol("genimage"))


def test_enumeration_is_sorted_and_deterministic(make_tree):
    root = make_tree(list(GENIMAGE))
    first, _ = build_manifest(root)
    second, _ = build_manifest(root)
    assert first.drop(columns="path").equals(second.drop(columns="path"))
    assert list(first["rel_path"]) == sorted(first["rel_path"])
    assert first["image_id"].is_unique


def test_registry_lists_every_layout():
    assert LAYOUTS.names() == ["forensynths", "genimage", "manifest", "realfake", "synthbuster", "wildrf"]


def test_parallel_decoding_gives_the_same_manifest(make_tree):
    root = make_tree(list(GENIMAGE))
    serial, _ = build_manifest(root, workers=1)
    parallel, _ = build_manifest(root, workers=2)
    assert serial.equals(parallel)
