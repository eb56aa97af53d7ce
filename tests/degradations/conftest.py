"""Small real-looking RGB images for degradation tests (a crop of skimage's astronaut photo)."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()[40:136, 180:300])  # 120 x 96, non-square, with edges and texture


@pytest.fixture()
def rng_image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(7).integers(0, 256, (33, 47, 3), dtype=np.uint8))
