"""Per-image determinism: the same image gets the same degradation whatever the order, batch or process."""

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mirage_bench.degradations import image_seed, parse

SPEC = "chain(noise(std=8),crop(size=12,pos=random),jpeg(q=70))"
IDS = [f"gen/val/{i % 2}/img{i:03d}.png" for i in range(6)]


def _image(image_id: str) -> Image.Image:
    seed = sum(image_id.encode())  # content fixed by the id, independent of the code under test
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8))


def _degrade(image_id: str) -> bytes:
    return np.asarray(parse(SPEC).apply(_image(image_id), image_seed(3, image_id))).tobytes()


def _degrade_batch(ids: list[str]) -> dict[str, bytes]:
    return {i: _degrade(i) for i in ids}


def test_image_seed_depends_on_base_seed_and_id() -> None:
    assert image_seed(0, "a") == image_seed(0, "a")
    assert len({image_seed(b, i) for b in (0, 1) for i in ("a", "b", "c")}) == 6
    assert all(0 <= image_seed(b, "x") < 2**63 for b in range(20))


def test_image_seed_is_the_same_in_another_interpreter() -> None:
    code = "from mirage_bench.degradations import image_seed; print(image_seed(7, 'sdv14/val/1/a.png'))"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == image_seed(7, "sdv14/val/1/a.png")


def test_image_seed_rejects_non_int_seeds() -> None:
    with pytest.raises(TypeError):
        image_seed("0", "a")  # type: ignore[arg-type]


def test_same_result_whatever_the_order_and_batching() -> None:
    whole = _degrade_batch(IDS)
    assert len(set(whole.values())) == len(IDS)  # different images, different seeds
    reordered = _degrade_batch(IDS[::-1])
    batched = {**_degrade_batch(IDS[4:]), **_degrade_batch(IDS[1:4]), **_degrade_batch(IDS[:1])}
    assert reordered == whole and batched == whole


def test_same_result_whatever_the_number_of_workers() -> None:
    serial = _degrade_batch(IDS)
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = dict(zip(IDS, pool.map(_degrade, IDS)))
    assert parallel == serial


def test_chain_steps_draw_independently() -> None:
    """Two noise steps in one chain must not add the same noise twice."""
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    twice = np.asarray(parse("chain(noise(std=4),noise(std=4))").apply(grey, 11), dtype=float) - 128
    assert abs(twice.std() - 4 * np.sqrt(2)) < 0.4  # independent: sqrt(2) x; identical draws would give 2 x
