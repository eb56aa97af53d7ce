"""FatFormer: one forward against a reference written here from the paper and the authors' code
(Michel-liu/FatFormer@febc24c: models/clip/model.py, models/clip_models.py), in their sequence-first layout, with
attention computed by hand and the Haar DWT as pytorch_wavelets computes it (strided convolutions,
fbcotter/pytorch_wavelets@9a0c507 dwt/lowlevel.py afb1d/sfb1d); the parameter count; what trains (falling loss on a
tiny image tree: test_baselines_contract.py)."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.fatformer import haar_dwt, haar_idwt
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable
from mirage_bench.errors import ConfigError

#: Tiny open_clip architectures (tests/detectors/clip_configs). SAME_WIDTH: the image embedding and the text tower share
#: their width (48), as ViT-L/14's do (768), the authors' layout, where the enhancer's attention has one input
#: projection (mb-tiny-clip, 32 vs 48, has three). ODD_GRID: 40 px in 8 px patches, a 5 x 5 grid.
SAME_WIDTH, ODD_GRID = "fatformer-test-clip", "fatformer-test-clip-odd-grid"


@pytest.fixture(scope="module", autouse=True)
def clip_configs() -> None:
    open_clip.add_model_config(Path(__file__).parent / "clip_configs")


# -- pytorch_wavelets' Haar DWT, by its own mechanics ------------------------------------------------------------
S = 2 ** -0.5
DEC_LO, DEC_HI = torch.tensor([S, S]), torch.tensor([-S, S])  # pywt's haar dec_lo, dec_hi
REC_LO, REC_HI = torch.tensor([S, S]), torch.tensor([S, -S])  # rec_lo, rec_hi


def _analysis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """afb1d, mode 'zero', even length: correlation with the reversed filters, stride 2, channels [lo, hi] each."""
    shape = (1, 1, 2, 1) if dim == 2 else (1, 1, 1, 2)
    filters = torch.cat([DEC_LO.flip(0).view(shape), DEC_HI.flip(0).view(shape)] * x.shape[1])
    return F.conv2d(x, filters, stride=(2, 1) if dim == 2 else (1, 2), groups=x.shape[1])


def _synthesis(lo: torch.Tensor, hi: torch.Tensor, dim: int) -> torch.Tensor:
    """sfb1d, mode 'zero': transposed convolutions with the reconstruction filters, stride 2."""
    shape, stride = ((1, 1, 2, 1), (2, 1)) if dim == 2 else ((1, 1, 1, 2), (1, 2))
    channels = lo.shape[1]
    return (F.conv_transpose2d(lo, torch.cat([REC_LO.view(shape)] * channels), stride=stride, groups=channels)
            + F.conv_transpose2d(hi, torch.cat([REC_HI.view(shape)] * channels), stride=stride, groups=channels))


def wavelets_dwt(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DWTForward(J=1, wave='haar'): rows filtered first (dim 3), then columns; -> (yl, yh[0] [B, C, 3, h, w])."""
    batch, channels, height, width = x.shape
    y = _analysis(_analysis(x, 3), 2).reshape(batch, channels, 4, height // 2, width // 2)
    return y[:, :, 0], y[:, :, 1:]


def wavelets_idwt(low: torch.Tensor, highs: torch.Tensor) -> torch.Tensor:
    lh, hl, hh = highs.unbind(2)
    return _synthesis(_synthesis(low, lh, 2), _synthesis(hl, hh, 2), 3)


def test_the_haar_transform_is_pytorch_wavelets_and_inverts() -> None:
    x = torch.randn(2, 5, 8, 6)
    low, highs = wavelets_dwt(x)
    ours = haar_dwt(x)
    assert torch.allclose(ours[:, :, 0], low, atol=1e-6) and torch.allclose(ours[:, :, 1:], highs, atol=1e-6)
    assert torch.allclose(wavelets_idwt(low, highs), x, atol=1e-6)
    bands = torch.randn(2, 5, 4, 3, 4)
    assert torch.allclose(haar_idwt(bands), wavelets_idwt(bands[:, :, 0], bands[:, :, 1:]), atol=1e-6)


# -- the authors' forward, sequence-first --------------------------------------------------------------------------
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, module: torch.nn.Module, mask: torch.Tensor | None = None) -> torch.Tensor:
    """nn.MultiheadAttention on sequence-first ``[L, B, D]`` by hand, from the module's weights."""
    joint = getattr(module, "in_proj_weight", None)
    wq, wk, wv = joint.chunk(3) if joint is not None else (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
    bq, bk, bv = module.in_proj_bias.chunk(3)
    heads = module.num_heads
    split = lambda t: t.unflatten(-1, (heads, -1)).permute(1, 2, 0, 3)  # noqa: E731 - [L, B, D] -> [B, H, L, D/H]
    q, k, v = split(q @ wq.T + bq), split(k @ wk.T + bk), split(v @ wv.T + bv)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    out = torch.softmax(scores + (mask if mask is not None else 0.0), dim=-1) @ v  # [B, H, Lq, D/H]
    return module.out_proj(out.permute(2, 0, 1, 3).flatten(2))


def clip_block(block: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The part of CLIP's ResidualAttentionBlock before the MLP: x + attn(ln_1 x)."""
    h = block.ln_1(x)
    return x + attention(h, h, h, block.attn, mask)


def reference_adapter(a: torch.nn.Module, x: torch.Tensor, variant: str) -> torch.Tensor:
    """ForgeryAwareAdapterLayer.forward on ``[nq, B, d]`` (eval: dropout off)."""
    nq, bs, md = x.shape
    grid = int(nq ** 0.5)
    patches = x[1:].transpose(0, 1).reshape(bs, grid, grid, md).permute(0, 3, 1, 2)
    low, highs = wavelets_dwt(patches)
    dwt = torch.cat([low[:, :, None], highs], dim=2)
    hh, ww = dwt.shape[-2:]
    dwt = a.dwt_norm(dwt.flatten(-2)).permute(0, 2, 3, 1)  # [B, 4, n, d]
    B, C, n = dwt.shape[:3]

    def across_bands(y: torch.Tensor) -> torch.Tensor:  # the authors' intra_band
        q = y.transpose(0, 1).flatten(1, 2)
        return a.norm_intra(y + attention(q, q, q, a.intra_band).reshape(C, B, n, md).transpose(0, 1))

    def within_band(y: torch.Tensor) -> torch.Tensor:  # the authors' inter_band
        q = y.flatten(0, 1).transpose(0, 1)
        return a.norm_inter(y + attention(q, q, q, a.inter_band).transpose(0, 1).reshape(B, C, n, md))

    y = within_band(across_bands(dwt)) if variant != "bands-reordered" else across_bands(within_band(dwt))
    y = a.norm3(y + a.linear2(F.relu(a.linear1(y))))
    y = y.reshape(bs, 4, hh, ww, md).permute(0, 4, 1, 2, 3)
    freq = wavelets_idwt(y[:, :, 0], y[:, :, 1:]).flatten(-2).permute(2, 0, 1)
    freq = torch.cat([torch.zeros_like(x[:1]), freq], dim=0)
    down = F.relu(a.first_conv_layer(x.permute(1, 2, 0)))
    up = a.second_conv_layer(down).permute(2, 0, 1) * 0.1
    return up + freq * a.freq_scale * (variant != "no-frequency")


def text_encoder(clip: torch.nn.Module, prompts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """TextEncoder.forward: + positions, the causal text transformer, ln_final, the EOT token, the projection."""
    x = (prompts + clip.positional_embedding).transpose(0, 1)
    for block in clip.transformer.resblocks:
        x = clip_block(block, x, clip.attn_mask)
        x = x + block.mlp(block.ln_2(x))
    x = clip.ln_final(x.transpose(0, 1))
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ clip.text_projection


def layer(m: torch.nn.Module, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """The enhancer's / interactor's attention, norm1, ReLU FFN, norm2, sequence-first."""
    x = m.norm1(query + attention(query, memory, memory, m.attn))
    return m.norm2(x + m.linear2(F.relu(m.linear1(x))))


def reference_logits(det: torch.nn.Module, images: torch.Tensor, backbone: str, variant: str = "") -> torch.Tensor:
    """CLIPModel.forward of the authors, with our detector's weights; returns fake - real logits."""
    clip, visual = det.clip, det.clip.visual
    adapters = dict(zip(det.adapter_blocks, det.adapters))
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x).transpose(0, 1)  # [T, B, d]
    for i, block in enumerate(visual.transformer.resblocks):
        before, x = x, clip_block(block, x)
        adapt = reference_adapter(adapters[i], before if variant == "adapter-on-block-input" else x, variant) if i in adapters else 0.0
        x = x + block.mlp(block.ln_2(x)) + adapt  # ResidualAttentionBlock.forward with add_adapter
    f = visual.ln_post(x.transpose(0, 1)) @ visual.proj  # [B, T, E]: return_full=True
    f_norm = f / f.norm(dim=-1, keepdim=True)
    n_ctx, batch = det.prompts.text_prompts[0].shape[0], f.shape[0]
    memory = f[:, 1:] if variant == "enhancer-on-patches" else f
    ctx = layer(det.enhancer, det.prompts.text_prompts[0][:, None].repeat_interleave(batch, dim=1), memory.transpose(0, 1))
    tokens = open_clip.get_tokenizer(backbone)([" ".join(["X"] * n_ctx) + f" {name}." for name in ("real", "fake")])
    embedding = clip.token_embedding(tokens)
    prefix, suffix = embedding[:, :1], embedding[:, 1 + n_ctx:]
    scale = clip.logit_scale.exp()
    logits, texts = [], []
    for ctx_i, image_i in zip(ctx.transpose(0, 1), f_norm):
        text = text_encoder(clip, torch.cat([prefix, ctx_i.expand(2, -1, -1), suffix], dim=1), tokens)
        texts.append(text)
        logits.append(scale * image_i[0] @ (text / text.norm(dim=-1, keepdim=True)).T)
    text_features = torch.stack(texts, dim=1)  # [2, B, E]
    aligned = layer(det.interactor, f[:, 1:].transpose(0, 1), text_features).transpose(0, 1).mean(dim=1)
    aligned = aligned / aligned.norm(dim=-1, keepdim=True)
    text_norm = text_features / text_features.norm(dim=-1, keepdim=True)
    aug = torch.stack([scale * a @ t.T for a, t in zip(aligned, text_norm.transpose(0, 1))])
    total = torch.stack(logits) + aug * (variant != "no-interactor")
    return total[:, 1] - total[:, 0]


@pytest.mark.parametrize("backbone", [SAME_WIDTH, "mb-tiny-clip"])
def test_one_forward_equals_the_authors_forward_and_the_reference_sees_each_block(backbone: str) -> None:
    torch.manual_seed(0)
    detector = build_tiny("fatformer", [f"backbone.name={backbone}"]).eval()
    assert detector.adapter_blocks == [0, 1, 2]
    with torch.no_grad():  # wider than the init (and freq_scale off 0), so that every branch moves the logits
        for _, parameter in detector.trainable_parameters():
            parameter.normal_(0.0, 0.2)
        for adapter in detector.adapters:
            adapter.freq_scale.fill_(1.0)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference_logits(detector, images, backbone)
        assert (detector(images) - expected).abs().max() < 2e-5, (detector(images), expected)  # measured: 2e-6
        # the comparison can fail: each skipped, reordered or moved part moves a logit by 1.3e-3 or more here
        for variant in ["no-frequency", "bands-reordered", "adapter-on-block-input", "enhancer-on-patches", "no-interactor"]:
            assert (reference_logits(detector, images, backbone, variant) - expected).abs().max() > 2e-4, variant


def test_the_paper_model_has_the_trainable_parameters_of_the_authors_modules() -> None:
    card = load_recipe("fatformer")
    assert (card.backbone.name, card.backbone.pretrained) == ("ViT-L-14-quickgelu", "openai")

    def linear(n_in: int, n_out: int) -> int:  # nn.Linear and nn.Conv1d(kernel_size=1)
        return n_in * n_out + n_out

    def mha(d: int) -> int:  # nn.MultiheadAttention(d, heads): in_proj [3d, d] + [3d], out_proj
        return 3 * d * d + 3 * d + linear(d, d)

    def adapter(d: int = 1024, r: int = 64) -> int:
        """ForgeryAwareAdapterLayer(): two convs, freq_scale, GroupNorm, intra/inter-band attention + norms, FFN + norm3."""
        return linear(d, r) + linear(r, d) + 1 + 2 * d + 2 * (mha(d) + 2 * d) + linear(d, 4 * d) + linear(4 * d, d) + 2 * d

    def alignment_layer(d: int = 768) -> int:
        """The patch-based enhancer or the text-guided interactor: attention, norm1, linear1, linear2, norm2."""
        return mha(d) + 2 * d + linear(d, 4 * d) + linear(4 * d, d) + 2 * d

    ctx = 8 * 768  # LanguageGuidedAlignment.ctx, --num_context_embedding 8
    assert 3 * adapter() + ctx + 2 * alignment_layer() == 64_974_531  # --num_vit_adapter 3
    assert count_trainable(card) == 64_974_531
    assert count_trainable(load_recipe("fatformer", ["params.num_adapters=4"])) == 4 * adapter() + ctx + 2 * alignment_layer()
    with pytest.raises(ConfigError, match="num_adapters=5 must divide the image tower's 24 blocks"):
        count_trainable(load_recipe("fatformer", ["params.num_adapters=5"]))


def test_only_the_adapters_and_the_alignment_train() -> None:
    """(Falling loss on a tiny image tree: tests/detectors/test_baselines_contract.py.)"""
    detector = build_tiny("fatformer")
    assert {n.split(".")[0] for n, _ in detector.trainable_parameters()} == {"adapters", "enhancer", "interactor", "prompts"}
    assert not any(p.requires_grad for p in detector.clip.parameters())
    assert "clip" not in {n.split(".")[0] for n in detector.state_dict()}


def test_a_grid_the_haar_transform_cannot_split_is_refused() -> None:
    with pytest.raises(ConfigError, match=f"even, square patch grid; backbone '{ODD_GRID}' has 5x5 patches"):
        build_tiny("fatformer", [f"backbone.name={ODD_GRID}", "input.size=40"])
