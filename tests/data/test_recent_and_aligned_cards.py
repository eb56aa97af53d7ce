"""Issue 28's protocol cards: MiraGe's recent-generator test (Sora, DALL-E 3, Infinity) reads a manifest list,
trains on GenImage SD v1.4 and pins nothing it cannot check; genimage-aligned re-encodes every GenImage test
image as JPEG q96 on the fly."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mirage_bench.data import build_manifest, protocol_subsets
from mirage_bench.protocol import load_protocol


def test_the_card_names_the_papers_generators_and_trains_on_genimage():
    card = load_protocol("mirage-recent")
    assert card.test == ["sora", "dalle3", "infinity"] and card.train == [] and card.train_from == "genimage"
    assert all(not g.expected for g in card.generators.values())  # unpinned: no published counts checked here
    assert card.generator_for_folder("DALL-E 3") == "dalle3"


def test_a_manifest_list_becomes_one_test_subset_per_generator(tmp_path):
    lines = ["path,label,generator"]
    for k, generator in enumerate(("sora", "dall-e-3", "infinity")):
        for label in (0, 1):
            name = f"{generator}_{label}.png"
            Image.fromarray(np.full((24, 24, 3), 40 * k + label, dtype=np.uint8)).save(tmp_path / name)
            lines.append(f"{name},{'fake' if label else 'real'},{generator}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    card = load_protocol("mirage-recent")
    manifest, _ = build_manifest(tmp_path, card.layout, card)
    data = protocol_subsets(card, manifest, roles=("test",))
    assert sorted(data.test) == ["dalle3", "infinity", "sora"]
    assert all(sorted(subset["label"]) == [0, 1] for subset in data.test.values())


def test_genimage_aligned_is_genimage_with_every_test_image_re_encoded_as_jpeg_96():
    aligned, genimage = load_protocol("genimage-aligned"), load_protocol("genimage")
    assert aligned.degradations == ["none", "jpeg(q=96)"]  # clean beside aligned: the drop is the format's share
    same = ("layout", "train", "train_split", "test", "test_split", "validation", "subsample", "generators")
    assert all(getattr(aligned, key) == getattr(genimage, key) for key in same)  # same training cells and test images
