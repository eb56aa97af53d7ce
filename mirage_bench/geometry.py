"""Where resizes and centre crops land, in torchvision's conventions, which the field's scripts use.

One definition for the reference preprocessing, the degradations and the fast path: a one-pixel disagreement
between them would shift every crop of a class of image sizes.
"""

from __future__ import annotations


def shorter_side_to(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) after torchvision's ``Resize(side)``: the shorter side becomes ``side``, the longer is
    scaled and truncated (``int(side * long / short)``)."""
    w, h = size
    if w <= h:
        return side, int(side * h / w)
    return int(side * w / h), side


def center_offset(length: int, size: int) -> int:
    """torchvision's ``CenterCrop`` offset along one axis: ``round((length - size) / 2)``, half to even; for
    odd margins it can sit one pixel past ``(length - size) // 2``."""
    return int(round((length - size) / 2.0))
