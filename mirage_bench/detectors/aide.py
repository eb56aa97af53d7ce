"""AIDE (Yan, Li, Cai, Hao, Jiang, Hu, Xie, ICLR 2025): DCT-graded patches through SRM filters and two ResNets, plus
a frozen CLIP ConvNeXt for semantics, fused by an MLP.

As the authors' code builds it (shilinyan99/AIDE@6725b71: data/dct.py, data/datasets.py, models/AIDE.py,
models/srm_filter_kernel.py), from the image as decoded (pixels in [0, 1]):

- patch selection: N x N patches every ``stride`` pixels; each patch's grade is sum_k 2^k * mean over band k of
  log(|DCT| + 1) (orthonormal 2-D DCT per channel; band k holds the coefficients with 2N/K*k <= i+j <= 2N/K*(k+1));
  the two lowest-graded patches ("minmin", "minmin1") and the two highest ("maxmax", "maxmax1") are kept. The
  authors' patch is the inverse DCT of the DCT through an all-pass filter, i.e. the patch itself;
- low level: each patch resized to ``patch_side`` (bilinear, no antialias), ImageNet-normalised, through the 30 SRM
  high-pass filters (summed over RGB), then ``model_min`` (the low patches) or ``model_max`` (the high ones): a
  ResNet-50 whose stem reads 30 channels, globally average-pooled; the four features are averaged;
- semantics: the whole image resized to ``image_side`` square, CLIP-normalised, through the frozen OpenCLIP ConvNeXt
  trunk whose head keeps only its LayerNorm (the authors replace its pool and flatten by identities), averaged over
  positions, then ``convnext_proj`` (Linear to 256). The authors run that projection inside ``torch.no_grad``, so it
  keeps its random initialisation: here it is a buffer unless ``train_semantic_projection`` (the paper's Figure 2);
- ``fc``: Linear(256 + 2048, 1024), GELU, Linear(1024, 2) on [semantic; low level]; the fake logit is the second
  class's minus the first's. Training loss: cross-entropy with label smoothing 0.1 (timm's, main_finetune.py).

Module names are the authors', so their state dicts map key for key (their unused ``fc`` heads of the two ResNets,
the fixed SRM weights and the ConvNeXt copy aside).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from mirage_bench.config import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, RecipeCard
from mirage_bench.detectors.base import Detector, required_backbone
from mirage_bench.detectors.clip.backbone import load_clip
from mirage_bench.detectors.npr import _make_layer
from mirage_bench.errors import ConfigError, DataError

#: How AIDE's card names its backbone, for messages that ask for one.
CONVNEXT_BACKBONE_EXAMPLE = "{name: convnext_xxlarge, pretrained: laion2b_s34b_b82k_augreg_soup}"


class AIDEParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(32, ge=2, description="N: side of the square patches the DCT grades")
    stride: int = Field(16, ge=1, description="step between patches (the authors' unfold stride)")
    bands: int = Field(6, ge=1, description="K: band-pass filters of the grade, band k weighted 2^k")
    patch_side: int = Field(256, ge=8, description="the four selected patches are resized to this side")
    image_side: int = Field(256, ge=8, description="the whole image is resized to this square for the ConvNeXt")
    block: Literal["bottleneck", "basic"] = Field("bottleneck", description="ResNet-50: bottleneck blocks")
    depths: tuple[int, int, int, int] = Field((3, 4, 6, 3), description="blocks per ResNet stage (ResNet-50: 3, 4, 6, 3)")
    width: int = Field(64, ge=4, description="channels of the ResNet stem and first stage")
    semantic_dim: int = Field(256, ge=1, description="width of convnext_proj, the semantic embedding")
    hidden: int = Field(1024, ge=1, description="hidden width of the fusing MLP")
    train_semantic_projection: bool = Field(False, description="train convnext_proj (the paper's Figure 2); the "
                                            "authors' code computes it under torch.no_grad, so it stays random")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="timm LabelSmoothingCrossEntropy (--smoothing 0.1)")


# -- DCT patch grading ------------------------------------------------------------------------------


def dct_matrix(n: int) -> Tensor:
    """Orthonormal DCT-II matrix ``D [n, n]``: ``D @ x @ D.T`` is the 2-D DCT of an n x n patch ``x``."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    scale = torch.where(i == 0, math.sqrt(1 / n), math.sqrt(2 / n))
    return (scale * torch.cos((j + 0.5) * math.pi * i / n)).float()


def band_masks(n: int, bands: int) -> Tensor:
    """``[K, n, n]``: band k marks the coefficients with ``2n/K*k <= i+j <= 2n/K*(k+1)``, each divided by its size
    (data/dct.py ``Filter(norm=True)``; both ends inclusive there, where the paper's Eq. 3 excludes the upper one)."""
    diagonal = torch.arange(n)[:, None] + torch.arange(n)[None, :]
    width = n * 2.0 / bands
    masks = torch.stack([((diagonal >= width * k) & (diagonal <= width * (k + 1))).float() for k in range(bands)])
    sizes = masks.sum(dim=(1, 2), keepdim=True)
    if (sizes == 0).any():
        raise ConfigError(f"params.bands={bands} leaves a band of the {n} x {n} DCT empty; use at most {2 * n - 1} bands")
    return masks / sizes


def graded_patches(pixels: Tensor, window: int, stride: int, dct: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """Every ``window``-sided patch ``[B, L, C, N, N]`` of ``pixels`` ([0, 1]) and its grade ``[B, L]``."""
    b, c = pixels.shape[:2]
    patches = F.unfold(pixels, window, stride=stride).transpose(1, 2).reshape(b, -1, c, window, window)
    energy = torch.log((dct @ patches @ dct.T).abs() + 1)  # log(|DCT| + 1), per channel
    per_band = torch.einsum("blcij,kij->blk", energy, masks)
    weights = 2.0 ** torch.arange(masks.shape[0], device=pixels.device, dtype=per_band.dtype)
    return patches, per_band @ weights


def extreme_patches(patches: Tensor, grades: Tensor) -> Tensor:
    """``[B, 4, C, N, N]``: the lowest, highest, second-lowest and second-highest graded patch (the authors' order
    minmin, maxmax, minmin1, maxmax1; with one patch, all four are it). A stable sort breaks ties by position."""
    order = torch.sort(grades, dim=1, stable=True).indices
    last = order.shape[1] - 1
    picks = order[:, [0, last, min(1, last), max(last - 1, 0)]]
    return patches[torch.arange(len(patches), device=patches.device)[:, None], picks]


# -- SRM noise residuals ----------------------------------------------------------------------------


def _centred(kernel: Tensor) -> Tensor:
    """A 3x3 kernel in the centre of a 5x5 one."""
    return F.pad(kernel, (1, 1, 1, 1)) if kernel.shape[-1] == 3 else kernel


def srm_filters() -> Tensor:
    """The 30 linear high-pass residuals of the Spatial Rich Model (Fridrich & Kodovsky, 2012), 5x5, each scaled by
    its central coefficient's magnitude, in the order of the authors' ``all_normalized_hpf_list``: 8 first-order,
    4 second-order, 8 third-order, 4 EDGE3x3, 4 EDGE5x5, SQUARE3x3, SQUARE5x5. ``[30, 5, 5]``."""
    ring = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]  # neighbours in raster order
    first = []
    for dy, dx in ring:
        k = torch.zeros(3, 3)
        k[1, 1], k[1 + dy, 1 + dx] = -1, 1
        first.append(k)
    second = []
    for dy, dx in [(1, 1), (1, 0), (1, -1), (0, 1)]:  # diagonal, vertical, anti-diagonal, horizontal
        k = torch.zeros(3, 3)
        k[1, 1], k[1 + dy, 1 + dx], k[1 - dy, 1 - dx] = -2, 1, 1
        second.append(k / 2)
    third = []
    for dy, dx in [(1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1)]:
        k = torch.zeros(5, 5)
        for step, value in zip((-2, -1, 0, 1), (-1, 3, -3, 1)):
            k[2 + step * dy, 2 + step * dx] = value
        third.append(k / 3)
    square3 = torch.tensor([[-1.0, 2, -1], [2, -4, 2], [-1, 2, -1]])
    square5 = torch.tensor([[-1.0, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]])

    def halves(square: Tensor) -> list[Tensor]:
        """The square kernel kept on its top, right, bottom and left half (the centre row or column included)."""
        m = square.shape[0] // 2
        keep = [lambda r, c: r <= m, lambda r, c: c >= m, lambda r, c: r >= m, lambda r, c: c <= m]
        rows, cols = torch.meshgrid(torch.arange(square.shape[0]), torch.arange(square.shape[0]), indexing="ij")
        return [square * side(rows, cols) for side in keep]

    edge3 = [k / 4 for k in halves(square3)]
    edge5 = [k / 12 for k in halves(square5)]
    return torch.stack([_centred(k) for k in [*first, *second, *third, *edge3, *edge5, square3 / 4, square5 / 12]])


class PatchResNet(nn.Module):
    """A torchvision-style ResNet over the 30 SRM residual channels, globally average-pooled (no classifier)."""

    def __init__(self, block: type[BasicBlock | Bottleneck], depths: tuple[int, int, int, int], width: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = width
        for i, depth in enumerate(depths):
            layer, channels = _make_layer(block, channels, width * 2**i, depth, stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", layer)
        self.out_channels = channels
        for m in self.modules():  # the authors' ResNet init, zero_init_residual=True
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, (Bottleneck, BasicBlock)):
                nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))  # [B, out_channels]


class FixedLinear(nn.Module):
    """A linear layer kept in the state dict as buffers, never trained: the authors' ``convnext_proj`` runs under
    ``torch.no_grad`` and so keeps its random initialisation (issue #19 of their repository)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().clone())
        self.register_buffer("bias", linear.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


def _channels(values: tuple[float, float, float]) -> Tensor:
    return torch.tensor(values).view(1, 3, 1, 1)


class AIDE(Detector):
    """Pixels -> four DCT-extreme patches -> SRM -> two ResNets, averaged; + frozen ConvNeXt semantics -> MLP -> 2 classes."""

    Params = AIDEParams
    tiny_overrides = (
        "backbone.name=mb-tiny-convnext-clip", "backbone.pretrained=none", "input.size=32", "input.resize=null",
        "input.eval_crop=center", "input.max_pixels=null", "params.window=8", "params.stride=4",
        "params.patch_side=32", "params.image_side=32", "params.block=basic", "params.depths=[1, 1, 1, 1]",
        "params.width=8", "params.semantic_dim=16", "params.hidden=32", "train.batch_size=4",
    )

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        clip, self._identity = load_clip(required_backbone(recipe, CONVNEXT_BACKBONE_EXAMPLE))
        trunk = getattr(clip.visual, "trunk", None)
        if not (callable(getattr(trunk, "forward_features", None)) and hasattr(getattr(trunk, "head", None), "norm")):
            raise ConfigError(f"{recipe.source or recipe.name}: detector 'aide' reads an open_clip ConvNeXt (timm) image "
                              f"tower, and backbone {recipe.backbone.name!r} has none; use e.g. {CONVNEXT_BACKBONE_EXAMPLE}")
        self.hold_frozen("encoder", trunk)
        p = self.params
        block = Bottleneck if p.block == "bottleneck" else BasicBlock
        with torch.device("cpu"):  # constants, computed even when the model is built on the meta device
            srm, dct, bands = srm_filters(), dct_matrix(p.window), band_masks(p.window, p.bands)
        self.register_buffer("srm", srm.unsqueeze(1).repeat(1, 3, 1, 1), persistent=False)  # [30, 3, 5, 5]
        self.register_buffer("dct", dct, persistent=False)
        self.register_buffer("bands", bands, persistent=False)
        for name, values in [("pixel_mean", recipe.input.mean), ("pixel_std", recipe.input.std), ("imagenet_mean", IMAGENET_MEAN),
                             ("imagenet_std", IMAGENET_STD), ("clip_mean", CLIP_MEAN), ("clip_std", CLIP_STD)]:
            self.register_buffer(name, _channels(values), persistent=False)
        self.model_min = PatchResNet(block, p.depths, p.width, in_channels=len(self.srm))
        self.model_max = PatchResNet(block, p.depths, p.width, in_channels=len(self.srm))
        low_level = self.model_min.out_channels
        self.fc = nn.Sequential(OrderedDict(fc1=nn.Linear(p.semantic_dim + low_level, p.hidden), act=nn.GELU(),
                                            fc2=nn.Linear(p.hidden, 2)))
        projection = nn.Linear(int(trunk.num_features), p.semantic_dim)
        self.convnext_proj = nn.Sequential(projection if p.train_semantic_projection else FixedLinear(projection))

    def _residuals(self, patches: Tensor) -> Tensor:
        """Patches ``[B, C, N, N]`` in [0, 1] -> resized, ImageNet-normalised, SRM residuals ``[B, 30, S, S]``."""
        side = self.params.patch_side
        x = F.interpolate(patches, size=(side, side), mode="bilinear", align_corners=False, antialias=False)
        return F.conv2d((x - self.imagenet_mean) / self.imagenet_std, self.srm, padding=2)

    def semantic_features(self, pixels: Tensor) -> Tensor:
        """The frozen ConvNeXt's final map, LayerNorm'd per position and averaged: ``[B, width]`` fp32."""
        side = self.params.image_side
        x = F.interpolate(pixels, size=(side, side), mode="bilinear", align_corners=False, antialias=False)
        with torch.no_grad():
            fmap = self.encoder.forward_features((x - self.clip_mean) / self.clip_std)  # [B, 3072, 8, 8] for xxlarge
            return self.encoder.head.norm(fmap).mean(dim=(2, 3)).float()

    def class_logits(self, images: Tensor) -> Tensor:
        """``[B, 2]`` (real, fake) logits of normalised images (the recipe's mean/std)."""
        p = self.params
        if min(images.shape[-2:]) < p.window:
            raise DataError(f"AIDE grades {p.window} px patches and got a {images.shape[-1]}x{images.shape[-2]} image; "
                            f"score images of at least {p.window} px (input.small_image=upscale with input.size >= {p.window})")
        pixels = images.float() * self.pixel_std + self.pixel_mean
        views = extreme_patches(*graded_patches(pixels, p.window, p.stride, self.dct, self.bands))  # [B, 4, 3, N, N]
        semantic = self.convnext_proj(self.semantic_features(pixels))
        streams = (self.model_min, self.model_max, self.model_min, self.model_max)  # minmin, maxmax, minmin1, maxmax1
        low = sum(stream(self._residuals(views[:, k])) for k, stream in enumerate(streams)) / len(streams)
        return self.fc(torch.cat([semantic, low], dim=1)).float()

    def forward(self, images: Tensor) -> Tensor:
        logits = self.class_logits(images)
        return self.check_output(images, logits[:, 1] - logits[:, 0])

    def training_loss(self, images: Tensor, labels: Tensor, image_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        loss = F.cross_entropy(self.class_logits(images), labels.long(), label_smoothing=self.params.label_smoothing)
        return loss, {"loss": float(loss.detach())}

    def backbone_identity(self) -> dict[str, Any]:
        return dict(self._identity)
