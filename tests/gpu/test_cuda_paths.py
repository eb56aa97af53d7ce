"""GPU paths against the CPU references. Skipped without CUDA; run on the GPU machine:

    python -m pytest tests/gpu -q
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image

from mirage_bench.kernels.ops import gaussian_blur_uint8
from mirage_bench.kernels.resample import resize_uint8

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _photos(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    big = np.stack([np.asarray(Image.fromarray(c).resize((w, h), Image.BICUBIC)) for c in coarse])
    return np.clip(big.astype(int) + rng.integers(-10, 11, big.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [1.0, 3.0, 5.0])
@pytest.mark.parametrize("shape", [(97, 131), (512, 512), (9, 8)])
def test_blur_on_cuda_is_bit_exact_with_scipy(sigma, shape):
    """The fused Triton kernel (FMA contraction off); flat areas are where a contracted multiply-add would
    flip truncations."""
    images = _photos(3, *shape, seed=int(sigma))
    images[:, : shape[0] // 2, : shape[1] // 3] = 200
    images[0, shape[0] // 2 :] = 255
    expected = images.copy()
    for im in expected:
        for c in range(3):
            ndi.gaussian_filter(im[:, :, c], output=im[:, :, c], sigma=sigma)
    got = gaussian_blur_uint8(torch.from_numpy(images).permute(0, 3, 1, 2).cuda(), sigma).cpu()
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), expected)


@pytest.mark.parametrize("size", [(112, 112), (64, 64), (224, 298), (256, 341), (600, 90)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_resize_on_cuda_is_bit_exact_with_pil(size, interpolation):
    images = _photos(3, 375, 500, seed=3)
    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[interpolation]
    expected = np.stack([np.asarray(Image.fromarray(im).resize(size[::-1], resample)) for im in images])
    got = resize_uint8(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().cuda(), size, interpolation).cpu()
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), expected)


def test_nvjpeg_decode_differs_from_pil_as_measured():
    """nvjpeg and libjpeg-turbo differ (IDCT, chroma upsampling): 5.97 grey levels on average on an H100 with
    torch 2.11, which is why the fast path decodes with PIL unless ``nvjpeg=True`` is asked for (and recorded)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    datas, references = [], []
    for k, image in enumerate(_photos(4, 375, 500, seed=5)):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)
        datas.append(torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8))
        references.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).astype(int))
    decoded = decode_jpeg(datas, mode=ImageReadMode.RGB, device="cuda")
    diffs = [np.abs(d.permute(1, 2, 0).cpu().numpy().astype(int) - r) for d, r in zip(decoded, references)]
    mean = float(np.mean([d.mean() for d in diffs]))
    print(f"nvjpeg vs PIL: mean |diff| {mean:.3f}, max {max(int(d.max()) for d in diffs)}")
    assert 0 < mean < 8


@pytest.mark.parametrize("quality", [65, 30])
def test_gpu_jpeg_encoder_does_not_match_pil_within_the_fast_path_tolerance(quality):
    """The issue allows JPEG on the GPU only if it matches PIL within a tested tolerance. torchvision's CUDA
    ``encode_jpeg`` (nvjpeg) against PIL's ``save(quality=q)``, both decoded by PIL so that only the encoders
    differ: if it ever came within 2 grey levels (max) and 0.1 (mean), the tolerance the fast path granted its
    resizes before they became bit-exact, JPEG could move to the GPU and this test would say so by failing."""
    from torchvision.io import encode_jpeg

    images = _photos(4, 375, 500, seed=7)
    encoded = encode_jpeg([torch.from_numpy(im).permute(2, 0, 1).contiguous().cuda() for im in images], quality=quality)
    diffs = []
    for image, data in zip(images, encoded):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        pil = np.asarray(Image.open(buffer).convert("RGB")).astype(int)
        gpu = np.asarray(Image.open(io.BytesIO(data.cpu().numpy().tobytes())).convert("RGB")).astype(int)
        diffs.append(np.abs(gpu - pil))
    mean, worst = float(np.mean([d.mean() for d in diffs])), max(int(d.max()) for d in diffs)
    print(f"nvjpeg encoder vs PIL at q{quality}: mean |diff| {mean:.3f}, max {worst}")
    assert not (worst <= 2 and mean < 0.1)


def test_fast_scorer_on_cuda_matches_cpu_reference(tmp_path):
    from mirage_bench.degradations import parse
    from mirage_bench.detectors.infra.build import build_tiny
    from mirage_bench.scoring import FastScorer, ReferenceScorer

    paths = []
    for k, image in enumerate(_photos(6, 48, 40, seed=7)):
        path = tmp_path / f"img{k}.{'jpg' if k % 2 else 'png'}"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    # sizes, as a scanned manifest has them: the scorer compiles its blur variants ahead, in threads (kernels.warm)
    manifest = pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(6)], "width": 40, "height": 48})
    degradations = [parse(s) for s in ["none", "blur(s=2)", "jpeg(q=50)", "downscale(size=24)"]]
    torch.manual_seed(0)
    detector = build_tiny("tinycnn", ["input.size=32"]).eval()
    reference = ReferenceScorer("cpu").score_one(detector, manifest, degradations).logits
    fast = FastScorer("cuda", workers=0, bf16=False).score_one(detector.cuda(), manifest, degradations)
    np.testing.assert_allclose(fast.logits, reference, atol=0.05)
    assert fast.impls[1] == "fast:pil+cuda-degrade+cuda-preprocess" and fast.impls[2] == "fast:pil+cpu-ref-degrade+cuda-preprocess"
    fast16 = FastScorer("cuda", workers=0, nvjpeg=True, bf16=True).score_one(detector, manifest, [parse("none")])
    assert fast16.impls[0].startswith("fast:nvjpeg")
    assert np.isfinite(fast16.logits).all()


def test_univfd_seeds_share_one_tower_forward_on_cuda_with_their_own_logits(tmp_path):
    """Three UnivFD checkpoints (one frozen tower, three heads) in one fast pass under bf16: each gets the
    logits of its own pass, and each pass timed its forwards with CUDA events."""
    from mirage_bench.degradations import parse
    from mirage_bench.detectors.infra.build import build_tiny
    from mirage_bench.scoring import FastScorer

    paths = []
    for k, image in enumerate(_photos(6, 48, 40, seed=9)):
        paths.append(str(tmp_path / f"img{k}.png"))
        Image.fromarray(image).save(paths[-1])
    manifest = pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(6)]})
    degradations = [parse(s) for s in ["none", "blur(s=2)", "jpeg(q=50)"]]
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_tiny("univfd").cuda().eval())
    scorer = FastScorer("cuda", workers=0, batch_size=4)
    together = scorer.score(models, manifest, degradations)
    for model, scores in zip(models, together):
        alone = scorer.score_one(model, manifest, degradations)
        np.testing.assert_allclose(scores.logits, alone.logits, rtol=0, atol=1e-5)
        assert scores.forward_seconds > 0 and alone.forward_seconds > 0
    assert not np.allclose(together[0].logits, together[1].logits)


def test_mirage_trains_on_cuda_under_bf16_with_frozen_clip():
    from mirage_bench.detectors.infra.build import build_tiny

    torch.manual_seed(0)
    detector = build_tiny("mirage").cuda().train()
    clip_before = {k: v.clone() for k, v in detector.frozen_modules()["clip"].state_dict().items()}
    optimiser = torch.optim.SGD([p for _, p in detector.trainable_parameters()], lr=0.01, momentum=0.9)
    images = torch.randn(8, 3, 32, 32, device="cuda")
    labels = torch.arange(8, device="cuda") % 2
    losses = []
    for step in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = detector.training_loss(images, labels, torch.arange(8, device="cuda") + 8 * step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    for k, v in detector.frozen_modules()["clip"].state_dict().items():
        assert torch.equal(v, clip_before[k]), k
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        assert detector.eval()(images).dtype == torch.float32


def _scoring_loop(tmp_path, n: int = 8, batch_size: int = 4, encode_wrapper=None):
    """The fast scorer's loop over ``n`` PNGs of two sizes and a grid with device and CPU degradations: a
    function ``run(copies)`` that scores them with a tiny CNN (its encoder wrapped by ``encode_wrapper``) and
    returns the device logits, copying batches on the stream ``copies`` (None: the compute stream)."""
    from mirage_bench.degradations import parse
    from mirage_bench.detectors.infra.build import build_tiny
    from mirage_bench.scoring.timing import TrunkClock
    from mirage_bench.scoring.trunks import model_trunks
    from mirage_bench.scoring.batches import grid_loader, prepared_batches
    from mirage_bench.scoring.device_plan import device_plans
    from mirage_bench.scoring.fast import ScoringModel, score_batches

    paths = []
    for k, image in enumerate(_photos(n, 48, 40, seed=5)):
        paths.append(str(tmp_path / f"img{k}.png"))
        Image.fromarray(image if k % 3 else image[:40]).save(paths[-1])  # two sizes
    manifest = pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(len(paths))]})
    degradations = [parse(s) for s in ["none", "blur(s=2)", "jpeg(q=50)", "downscale(size=24)"]]
    plans = device_plans(degradations)
    torch.manual_seed(0)
    detector = build_tiny("tinycnn", ["input.size=32"]).cuda().eval()
    device = torch.device("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)

    def run(copies: torch.cuda.Stream | None = None) -> torch.Tensor:
        loader = grid_loader(manifest, degradations, plans, 0, raw_jpeg=False, batch_size=batch_size, workers=0, pin_memory=True)
        logits = torch.full((len(degradations), len(paths)), float("nan"), device=device)
        with torch.no_grad():
            trunks = model_trunks([detector], [0])
            if encode_wrapper is not None:
                trunks = [trunk._replace(encode=encode_wrapper(trunk.encode)) for trunk in trunks]
            batches = prepared_batches(loader, plans, [detector.input_spec], device, batch_size, copies)
            score_batches([ScoringModel(trunks[0], autocast)], batches, [logits], clock=TrunkClock(trunks, device))
        return logits

    return run


@pytest.mark.parametrize("side_stream", [False, True])
def test_fast_scoring_loop_never_waits_for_the_gpu(tmp_path, side_stream):
    """Inside the scoring loop the host only queues work: CUDA's sync debug mode raises on any host-device
    synchronisation (a pageable copy, an ``.item()``, a ``.cpu()``), including the copy stream's hand-over and
    the CUDA events that time the forwards."""
    run = _scoring_loop(tmp_path)
    copies = torch.cuda.Stream() if side_stream else None
    run(copies)  # warm-up: kernel selection may synchronise once
    torch.cuda.set_sync_debug_mode("error")
    try:
        logits = run(copies)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(logits).all()


def test_copies_on_their_own_stream_overlap_the_forwards_and_give_the_same_logits(tmp_path):
    """With a model that lags on the device (a sleep kernel per forward), the host queues later batches' copies
    long before the kernels that read earlier batches ran. On the copy stream they overlap those kernels in
    time (on the compute stream nothing can), and the logits equal the compute stream's bit for bit: a copy that
    landed in memory a lagging kernel still read, or a kernel that read a copy before it finished, would change
    them."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    def lagging(encode):
        def slow(x: torch.Tensor) -> torch.Tensor:
            torch.cuda._sleep(2_000_000)  # a few ms per forward
            return encode(x)

        return slow

    run = _scoring_loop(tmp_path, n=24, batch_size=2, encode_wrapper=lagging)
    run()  # warm-up

    def overlaps(copies: torch.cuda.Stream | None) -> tuple[torch.Tensor, int]:
        with profile(activities=[ProfilerActivity.CUDA]) as profiler:
            logits = run(copies)
            torch.cuda.synchronize()
        device_events = [e for e in profiler.events() if e.device_type == DeviceType.CUDA]
        copied = [e.time_range for e in device_events if "HtoD" in e.name]
        kernels = [e.time_range for e in device_events if "HtoD" not in e.name and "Memset" not in e.name]
        assert copied and kernels
        return logits, sum(any(c.start < k.end and k.start < c.end for k in kernels) for c in copied)

    same, serial = overlaps(None)
    side, overlapped = overlaps(torch.cuda.Stream())
    print(f"host-to-device copies overlapping a kernel: {serial} on the compute stream, {overlapped} on their own stream")
    assert serial == 0 and overlapped > 0
    assert torch.isfinite(side).all()
    torch.testing.assert_close(side, same, rtol=0, atol=0)


def test_self_attention_matches_open_clip_on_cuda():
    """A ViT-L/14-sized block (width 1024, 16 heads of 64, 257 tokens): SelfAttention's SDPA on strided q/k/v
    views agrees with open_clip's nn.MultiheadAttention on CUDA, in fp32 and under bf16 autocast, forward and
    backward (prompt learning backpropagates through the frozen blocks)."""
    import copy

    from open_clip.transformer import ResidualAttentionBlock

    from mirage_bench.detectors.clip.attention import use_self_attention

    torch.manual_seed(0)
    theirs = ResidualAttentionBlock(1024, 16).cuda().eval()
    ours = copy.deepcopy(theirs)
    assert use_self_attention(ours) == 1
    x = torch.randn(4, 257, 1024, device="cuda")
    for bf16, tol in ((False, 1e-4), (True, 0.05)):
        outs, grads = [], []
        for block in (theirs, ours):
            x_ = x.clone().requires_grad_(True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                y = block(x_)
            y.float().square().sum().backward()
            outs.append(y.float())
            grads.append(x_.grad)
        torch.testing.assert_close(outs[1], outs[0], rtol=tol, atol=tol)
        torch.testing.assert_close(grads[1], grads[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_quick_gelu_runs_as_one_triton_kernel_on_cuda_with_the_cpu_ops_result(dtype):
    """The one-op QuickGELU on CUDA (Triton) against the same float32 arithmetic on the CPU: a few units in the last
    place apart at most (Triton's sigmoid may take the GPU's fast exponential, a few float32 units off)."""
    from mirage_bench.detectors.clip.quick_gelu import quick_gelu

    x = (torch.randn(64, 257, 4096, generator=torch.Generator().manual_seed(0)) * 4).to(dtype)
    got = quick_gelu(x.cuda()).cpu()
    expected = quick_gelu(x)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=4 * torch.finfo(dtype).eps, atol=torch.finfo(dtype).tiny)


def _compiled_variants(kernel, device: torch.device) -> int:
    caches = getattr(kernel, "device_caches", None)  # Triton 3.2 on: per device (kernel cache, ...); before: kernel.cache
    index = device.index if device.index is not None else torch.cuda.current_device()
    return len(caches[index][0]) if caches is not None else len(kernel.cache[index])


def test_blur_variants_compiled_ahead_in_threads_serve_every_later_launch():
    """``kernels.warm``'s jobs, run side by side in threads, compile and load every variant that blurs of those
    shapes need: launches of any batch size afterwards compile nothing, and give scipy's bytes."""
    from mirage_bench.kernels.blur_triton import _blur_pass, variant_compiles
    from mirage_bench.kernels.warm import compiling
    from mirage_bench.scoring.warmup import GROUP_COUNTS

    device = torch.device("cuda")
    sizes = ((37, 53), (48, 64), (9, 8))
    gaussian_blur_uint8(torch.zeros((1, 3, 4, 4), dtype=torch.uint8, device=device), 1.0)  # Triton's per-device cache exists
    with compiling(variant_compiles([((n, 3, h, w), r) for n in GROUP_COUNTS for h, w in sizes for r in (1, 12)], device)) as wait:
        wait()
    compiled = _compiled_variants(_blur_pass, device)
    for n in (3, 5, 12, 16, 33):
        for h, w in sizes:
            images = _photos(n, h, w, seed=n)
            expected = images.copy()
            for im in expected:
                for c in range(3):
                    ndi.gaussian_filter(im[:, :, c], output=im[:, :, c], sigma=3.0)
            got = gaussian_blur_uint8(torch.from_numpy(images).permute(0, 3, 1, 2).to(device), 3.0).cpu()
            np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), expected)
    assert _compiled_variants(_blur_pass, device) == compiled


def test_the_resize_variant_compiled_ahead_serves_every_later_launch():
    """``kernels.warm``'s resize job compiles and loads the kernel's one variant: resizes of any size, count and
    direction afterwards compile nothing, and give PIL's bytes."""
    from mirage_bench.kernels.resample_triton import _resample_pass, variant_compile
    from mirage_bench.kernels.warm import compiling

    device = torch.device("cuda", torch.cuda.current_device())
    with compiling([variant_compile(device)]) as wait:
        wait()
    compiled = _compiled_variants(_resample_pass, device)
    for n, (h, w), (th, tw) in [(1, (375, 500), (256, 341)), (5, (512, 512), (64, 64)), (16, (37, 53), (61, 20)), (3, (9, 1), (4, 7))]:
        images = _photos(n, h, w, seed=n)
        expected = np.stack([np.asarray(Image.fromarray(im).resize((tw, th), Image.BICUBIC)) for im in images])
        got = resize_uint8(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device), (th, tw), "bicubic").cpu()
        np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), expected)
    assert _compiled_variants(_resample_pass, device) == compiled


def test_normalize_on_cuda_gives_the_references_floats_channels_last():
    """The Triton kernel against ``preprocess.to_tensor`` on the CPU, bit for bit, from strided crops; its two
    variants compiled ahead (``kernels.warm``) serve the launches."""
    from mirage_bench.config import InputSpec
    from mirage_bench.kernels.normalize_triton import _normalize, variant_compiles
    from mirage_bench.kernels.ops import normalize
    from mirage_bench.kernels.warm import compiling
    from mirage_bench.preprocess import eval_geometry, to_tensor

    device = torch.device("cuda", torch.cuda.current_device())
    with compiling(variant_compiles(device)) as wait:
        wait()
    compiled = _compiled_variants(_normalize, device)
    spec = InputSpec()
    for n, h, w in [(4, 256, 341), (3, 256, 256), (2, 230, 229)]:
        images = torch.from_numpy(_photos(n, h, w, seed=h)).permute(0, 3, 1, 2).contiguous()
        crops = eval_geometry(images, InputSpec(size=224))
        got = normalize(eval_geometry(images.to(device), InputSpec(size=224)), spec.mean, spec.std)  # a strided view on the device
        assert got.is_contiguous(memory_format=torch.channels_last)
        expected = torch.stack([to_tensor(Image.fromarray(im.permute(1, 2, 0).numpy()), spec) for im in crops])
        torch.testing.assert_close(got.cpu(), expected, rtol=0, atol=0)
    assert _compiled_variants(_normalize, device) == compiled
