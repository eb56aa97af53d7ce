"""The real photographs of the mini benchmark, their split, and seeded multi-scale crops of them.

Only photos that ship inside scikit-image and scikit-learn are used (no download). The split is by
source photo, fixed here, so no photo feeds both training and test; the stereo pair motorcycle_left/right
is one photo. Crops are taken at several scales (side = size x 1, 2, 4, 8 where the photo allows) and
resized to ``size`` px with a Lanczos filter; nearly flat crops (sky, black borders) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image

from mirage_bench.errors import DataError


@dataclass(frozen=True)
class Photo:
    """One source photograph: its key, split, where it ships and under which licence."""

    key: str
    split: str  # "train" or "val"
    package: str
    loader: str
    licence: str
    attribution: str


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "train", "scikit-image", "skimage.data.astronaut", "public domain", "NASA (Eileen Collins), NASA Great Images"),
    Photo("chelsea", "train", "scikit-image", "skimage.data.chelsea", "CC0", "Stefan van der Walt"),
    Photo("rocket", "train", "scikit-image", "skimage.data.rocket", "public domain", "SpaceX (DSCOVR launch on Falcon 9)"),
    Photo("hubble_deep_field", "train", "scikit-image", "skimage.data.hubble_deep_field", "public domain", "NASA, HubbleSite"),
    Photo("retina", "train", "scikit-image", "skimage.data.retina", "CC0", "Mikael Haggstrom, Wikimedia Commons"),
    Photo("immunohistochemistry", "train", "scikit-image", "skimage.data.immunohistochemistry", "no known copyright restrictions", "Center for Microscopy And Molecular Imaging (CMMI)"),
    Photo("flower", "train", "scikit-learn", "sklearn.datasets.load_sample_images (flower.jpg)", "CC BY 2.0", "vultilion on Flickr, retrieved by Robert Layton"),
    Photo("coffee", "val", "scikit-image", "skimage.data.coffee", "CC0", "Rachel Michetti, courtesy of Pikolo Espresso Bar"),
    Photo("china", "val", "scikit-learn", "sklearn.datasets.load_sample_images (china.jpg)", "CC BY 2.0", "danielbuechele on Flickr, retrieved by Robert Layton"),
    Photo("motorcycle", "val", "scikit-image", "skimage.data.stereo_motorcycle (left and right views, one photo)", "as redistributed by scikit-image", "Middlebury 2014 stereo benchmark (Scharstein et al.)"),
)

SPLITS = ("train", "val")
SCALES = (1, 2, 4, 8)
#: crops whose pixel standard deviation (0..1 scale) is below this are skipped as nearly flat
MIN_CROP_STD = 0.04


def photos_of(split: str) -> list[Photo]:
    if split not in SPLITS:
        raise DataError(f"unknown photo split {split!r}; allowed: {', '.join(SPLITS)}")
    return [p for p in PHOTOS if p.split == split]


def _load_views(key: str) -> list[np.ndarray]:
    import skimage.data as skdata

    if key == "motorcycle":
        left, right, _ = skdata.stereo_motorcycle()
        return [left, right]
    if key in {"china", "flower"}:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        index = [name.rsplit("/", 1)[-1] for name in bunch.filenames].index(f"{key}.jpg")
        return [bunch.images[index]]
    loader: Callable[[], np.ndarray] = getattr(skdata, key)
    return [loader()]


@lru_cache(maxsize=None)
def load_photo(key: str) -> tuple[Image.Image, ...]:
    """The RGB views of one photo (two for the stereo pair), decoded once per process."""
    views = []
    for array in _load_views(key):
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise DataError(f"photo {key!r} loaded as {array.shape} {array.dtype}; expected an RGB uint8 image")
        views.append(Image.fromarray(array, "RGB"))
    return tuple(views)


@dataclass(frozen=True)
class Crop:
    """Where a crop came from: enough to redraw it."""

    photo: str
    view: int
    left: int
    top: int
    side: int

    def render(self, size: int) -> np.ndarray:
        image = load_photo(self.photo)[self.view]
        box = (self.left, self.top, self.left + self.side, self.top + self.side)
        out = image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=None)
        return np.asarray(out, dtype=np.uint8)


def sample_crops(split: str, count: int, size: int, rng: np.random.Generator) -> tuple[list[Crop], np.ndarray]:
    """``count`` crops (photo uniform, then scale uniform over those that fit) as ``[N, size, size, 3]`` uint8."""
    photos = photos_of(split)
    crops: list[Crop] = []
    pixels: list[np.ndarray] = []
    attempts = 0
    while len(crops) < count:
        attempts += 1
        if attempts > 50 * count + 100:
            raise DataError(f"could not find {count} non-flat {size} px crops in the {split} photos")
        photo = photos[int(rng.integers(len(photos)))]
        views = load_photo(photo.key)
        view = int(rng.integers(len(views)))
        width, height = views[view].size
        scales = [s for s in SCALES if size * s <= min(width, height)]
        side = size * scales[int(rng.integers(len(scales)))]
        crop = Crop(photo.key, view, int(rng.integers(width - side + 1)), int(rng.integers(height - side + 1)), side)
        array = crop.render(size)
        if array.std() / 255.0 < MIN_CROP_STD:
            continue
        crops.append(crop)
        pixels.append(array)
    return crops, np.stack(pixels)
