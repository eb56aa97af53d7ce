"""AIDE: one forward against a reference written here from the paper and the authors' code (shilinyan99/AIDE@6725b71:
data/dct.py, data/datasets.py, models/AIDE.py), per image as their data loader and model run it; the SRM bank; the
patch choice on a made image; the trainable parameter count; training lowers the loss."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from mirage_bench.cards import load_recipe
from mirage_bench.config import CLIP_MEAN, CLIP_STD
from mirage_bench.detectors.aide import extreme_patches, graded_patches, srm_filters
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable
from mirage_bench.errors import ConfigError, DataError


def reference_extremes(image: np.ndarray, n: int, stride: int, bands: int) -> list[np.ndarray]:
    """data/dct.py for one ``[C, H, W]`` image in [0, 1]: grade every patch by scipy's orthonormal DCT, return the
    patches (inverse DCT of the all-pass-filtered DCT, as theirs) minmin, maxmax, minmin1, maxmax1."""
    c, h, w = image.shape
    patches = [image[:, top:top + n, left:left + n] for top in range(0, h - n + 1, stride) for left in range(0, w - n + 1, stride)]
    grades = []
    for patch in patches:
        energy = np.log(np.abs(scipy.fft.dctn(patch, type=2, norm="ortho", axes=(1, 2))) + 1)
        grade, weight = 0.0, 1
        for k in range(bands):  # 'Filter(window, 2N/K*k, 2N/K*(k+1), norm=True)'
            start, end = n * 2.0 / bands * k, n * 2.0 / bands * (k + 1)
            band = np.array([[1.0 if start <= i + j <= end else 0.0 for j in range(n)] for i in range(n)])
            grade += weight * float((energy * band / band.sum()).sum())
            weight *= 2
        grades.append(grade)
    order = np.argsort(grades, kind="stable")
    picks = [order[0], order[-1], order[1], order[-2]]
    return [scipy.fft.idctn(scipy.fft.dctn(patches[i], norm="ortho", axes=(1, 2)), norm="ortho", axes=(1, 2)) for i in picks]


def reference_resnet(state: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, depths: tuple[int, ...]) -> torch.Tensor:
    """The authors' ResNet.forward (basic blocks, eval mode) from its state dict: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool,
    four stages, global average pool (their ``fc`` is never called)."""
    def bn(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(t, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"], state[f"{name}.bias"])

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, state[f"{prefix}.conv1.weight"], stride=2, padding=3), f"{prefix}.bn1")), 3, 2, 1)
    for stage, depth in enumerate(depths, start=1):
        for i in range(depth):
            name = f"{prefix}.layer{stage}.{i}"
            stride = 2 if stage > 1 and i == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{name}.conv1.weight"], stride=stride, padding=1), f"{name}.bn1"))
            out = bn(F.conv2d(out, state[f"{name}.conv2.weight"], padding=1), f"{name}.bn2")
            shortcut = bn(F.conv2d(x, state[f"{name}.downsample.0.weight"], stride=stride), f"{name}.downsample.1") if f"{name}.downsample.0.weight" in state else x
            x = F.relu(out + shortcut)
    return x.mean(dim=(2, 3))


def reference_logits(detector, images: torch.Tensor, *, swap_streams: bool = False, srm_reversed: bool = False,
                     low_first: bool = False) -> torch.Tensor:
    """datasets.py + AIDE_Model.forward, one image at a time; the flags break one step each (the test sees them)."""
    p, spec, state = detector.params, detector.input_spec, detector.state_dict()
    mean, std = torch.tensor(spec.mean).view(3, 1, 1), torch.tensor(spec.std).view(3, 1, 1)
    imagenet = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    clip = open_clip.create_model("mb-tiny-convnext-clip", pretrained=None)  # open_clip's own trunk, with their head edits
    trunk = clip.visual.trunk
    trunk.load_state_dict(detector.encoder.state_dict())
    trunk.head.global_pool, trunk.head.flatten = nn.Identity(), nn.Identity()
    trunk.eval()
    srm = detector.srm  # the bank itself is checked against literal kernels below
    clip_mean, clip_std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    in_mean, in_std = torch.tensor(imagenet["mean"]).view(3, 1, 1), torch.tensor(imagenet["std"]).view(3, 1, 1)
    out = []
    for image in images:
        pixels = image * std + mean  # ToTensor's [0, 1] image
        views = [torch.from_numpy(v).float() for v in reference_extremes(pixels.double().numpy(), p.window, p.stride, p.bands)]
        views = [TF.normalize(TF.resize(v, [p.patch_side] * 2, antialias=False), **imagenet) for v in views]
        tokens = TF.normalize(TF.resize(pixels, [p.image_side] * 2, antialias=False), **imagenet)
        features = []
        for k, view in enumerate(views):  # model_min on minmin/minmin1, model_max on maxmax/maxmax1
            residual = F.conv2d(view[None], srm.flip(0) if srm_reversed else srm, padding=2)
            stream = ("model_max" if k % 2 == 0 else "model_min") if swap_streams else ("model_min" if k % 2 == 0 else "model_max")
            features.append(reference_resnet(state, stream, residual, p.depths))
        low = (features[0] + features[1] + features[2] + features[3]) / 4
        semantic_map = trunk((tokens * (in_std / clip_std) + (in_mean - clip_mean) / clip_std)[None])
        semantic = F.linear(semantic_map.mean(dim=(2, 3)), state["convnext_proj.0.weight"], state["convnext_proj.0.bias"])
        fused = torch.cat([low, semantic] if low_first else [semantic, low], dim=1)
        hidden = F.gelu(F.linear(fused, state["fc.fc1.weight"], state["fc.fc1.bias"]))
        two = F.linear(hidden, state["fc.fc2.weight"], state["fc.fc2.bias"])[0]
        out.append(two[1] - two[0])
    return torch.stack(out)


def test_one_forward_equals_the_reference_and_the_reference_sees_each_block(one_thread) -> None:
    torch.manual_seed(0)
    detector = build_tiny("aide").eval()
    with torch.no_grad():  # wider than PyTorch's init (whose last BN of each block starts at 0), so every block counts
        for tensor in [*detector.parameters(), detector.convnext_proj[0].weight, detector.convnext_proj[0].bias]:
            tensor.normal_(0.0, 0.3)
    images = torch.randn(2, 3, 40, 36)  # not square, 8 x 7 patches: rows and columns cannot be confused
    with torch.no_grad():
        expected = reference_logits(detector, images)
        assert torch.allclose(detector(images), expected, rtol=1e-4, atol=1e-4), (detector(images), expected)
        for broken in ({"swap_streams": True}, {"srm_reversed": True}, {"low_first": True}):
            assert not torch.allclose(reference_logits(detector, images, **broken), expected, rtol=0.01, atol=0.01), broken


def test_the_srm_bank_holds_the_30_rich_model_residuals_in_the_authors_order() -> None:
    bank = srm_filters()
    assert bank.shape == (30, 5, 5)
    assert torch.allclose(bank.sum(dim=(1, 2)), torch.zeros(30), atol=1e-6)  # high-pass: flat images give 0
    assert len({tuple(k.flatten().tolist()) for k in bank}) == 30
    padded = lambda rows: F.pad(torch.tensor(rows, dtype=torch.float32), (1, 1, 1, 1))  # noqa: E731
    assert torch.equal(bank[0], padded([[1, 0, 0], [0, -1, 0], [0, 0, 0]]))  # first order, up-left neighbour
    assert torch.equal(bank[7], padded([[0, 0, 0], [0, -1, 0], [0, 0, 1]]))
    assert torch.equal(bank[10], padded([[0, 0, 1], [0, -2, 0], [1, 0, 0]]) / 2)  # second order, anti-diagonal
    assert torch.equal(bank[14], torch.tensor([[0, 0, 0, 0, -1], [0, 0, 0, 3, 0], [0, 0, -3, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0.0]]) / 3)
    assert torch.equal(bank[15], torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -3, 3, -1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0.0]]) / 3)
    assert torch.equal(bank[21], padded([[0, 2, -1], [0, -4, 2], [0, 2, -1]]) / 4)  # EDGE3x3, right half
    assert torch.equal(bank[26], torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1.0]]) / 12)
    assert torch.equal(bank[28], padded([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]) / 4)
    assert bank[29][2, 2] == -1 and bank[29][0, 0] == -1 / 12


def test_the_flattest_and_the_busiest_patches_are_chosen() -> None:
    detector = build_tiny("aide").eval()
    pixels = torch.full((1, 3, 32, 32), 0.5)
    pixels[..., 20:28, 20:28] = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # one noisy patch
    pixels[..., 0:8, 0:8] += torch.linspace(0, 0.01, 8)  # the other corner barely varies
    patches, grades = graded_patches(pixels, 8, 4, detector.dct, detector.bands)
    views = extreme_patches(patches, grades)[0]
    assert grades.shape == (1, 49)
    assert torch.equal(views[1], pixels[0, :, 20:28, 20:28])  # maxmax: the noisy patch
    assert float(views[0].std()) == 0.0 and float(views[2].std()) == 0.0  # minmin, minmin1: flat patches


def test_the_paper_model_has_the_authors_trainable_parameters() -> None:
    import torchvision

    card = load_recipe("aide")
    assert (card.backbone.name, card.backbone.pretrained) == ("convnext_xxlarge", "laion2b_s34b_b82k_augreg_soup")
    with torch.device("meta"):
        resnet50 = sum(p.numel() for p in torchvision.models.resnet50().parameters())  # 25,557,032 with its fc
    stem_30 = 64 * 30 * 7 * 7 - 64 * 3 * 7 * 7  # their conv1 reads the 30 SRM channels
    fc_1000, mlp, proj = 2048 * 1000 + 1000, (2304 * 1024 + 1024) + (1024 * 2 + 2), 3072 * 256 + 256
    authors_printed = 2 * (resnet50 + stem_30) + mlp + proj  # main_finetune.py 'number of params' (requires_grad)
    assert authors_printed == 54_432_466
    # ours leaves out what never trains there: the two unused 1000-way fc layers and the no_grad convnext_proj
    assert count_trainable(card) == authors_printed - 2 * fc_1000 - proj == 49_547_778
    assert count_trainable(load_recipe("aide", ["params.train_semantic_projection=true"])) == 49_547_778 + proj


def test_training_lowers_the_loss_and_the_convnext_and_projection_stay_fixed(one_thread) -> None:
    torch.manual_seed(0)
    detector = build_tiny("aide")
    assert {n.split(".")[0] for n, _ in detector.trainable_parameters()} == {"model_min", "model_max", "fc"}
    assert "convnext_proj.0.weight" in detector.state_dict() and not any(p.requires_grad for p in detector.encoder.parameters())
    images, labels = torch.rand(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    images[labels == 1] += 0.3 * torch.randn(4, 3, 32, 32)  # fakes are noisier: a low-level cue
    projection = detector.convnext_proj[0].weight.clone()
    optimiser = torch.optim.Adam([p for _, p in detector.trainable_parameters()], lr=1e-2)

    def batch_loss() -> float:  # training mode (batch statistics), as the objective is optimised
        detector.train()
        with torch.no_grad():
            return detector.training_loss(images, labels)[0].item()

    before = batch_loss()
    for _ in range(10):
        loss, _ = detector.training_loss(images, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert batch_loss() < 0.5 * before  # label smoothing 0.1 floors it near 0.2
    assert torch.equal(detector.convnext_proj[0].weight, projection)


def test_label_smoothing_is_the_authors_cross_entropy(one_thread) -> None:
    detector = build_tiny("aide").eval()
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        loss, _ = detector.training_loss(images, labels)
        fake = detector(images)
    log_p = torch.stack([F.logsigmoid(-fake), F.logsigmoid(fake)], dim=1)  # log softmax of (real, fake)
    timm_style = 0.9 * -log_p.gather(1, labels[:, None]).squeeze(1) + 0.1 * -log_p.mean(dim=1)
    assert loss.item() == pytest.approx(timm_style.mean().item(), rel=1e-5)


def test_an_image_smaller_than_a_patch_and_a_vit_backbone_are_refused() -> None:
    detector = build_tiny("aide").eval()
    with pytest.raises(DataError, match="8 px patches and got a 6x6 image"):
        detector(torch.randn(1, 3, 6, 6))
    with pytest.raises(ConfigError, match="open_clip ConvNeXt"):
        build_tiny("aide", ["backbone.name=mb-tiny-clip"])
