"""FatFormer (Liu et al., CVPR 2024): forgery-aware adapters inside a frozen CLIP, language-guided alignment.

As the authors' released model computes it (Michel-liu/FatFormer@febc24c, models/clip/model.py and
models/clip_models.py; their training code is not released, so the loss and what trains follow the paper):

- Forgery-aware adapters (``ForgeryAwareAdapterLayer``) after every ``L / n``-th block of CLIP's image tower (n = 3:
  blocks 7, 15, 23 of ViT-L/14). A block with an adapter returns ``x + mlp(ln_2 x) + adapter(x)``, ``x`` being its
  state after attention. The adapter adds an image branch (1x1 conv down to 64, ReLU, dropout, 1x1 conv up, times
  0.1) and ``freq_scale`` (initialised 0) times a frequency branch: the patch grid's one-level Haar DWT (4 bands),
  GroupNorm, attention across the 4 bands at each position (the authors' module ``intra_band``), attention across
  the positions of each band (``inter_band``), each post-norm with a residual, an FFN, and the inverse DWT; the
  class token gets no frequency term.
- Image features: ``ln_post`` then CLIP's projection on every token, ``f`` ``[B, 1 + N, E]``.
- Patch-based enhancer: the 8 learned context tokens (CoOp's "X X ... X {class}.") attend to all of ``f`` (the code
  includes the class token; the paper says patches), post-norm, FFN; the result is each image's context for the
  prompts "ctx real." and "ctx fake.", encoded by CLIP's text tower: ``t`` ``[B, 2, E]``.
- Text-guided interactor: the patch tokens ``f[:, 1:]`` attend to ``t``, post-norm, FFN, mean over patches.
- Logits ``s * cos(f_cls, t) + s * cos(mean interactor output, t)`` (s = CLIP's ``logit_scale.exp()``), the paper's
  Eq. 9 summed with Eq. 1; cross-entropy over them trains the adapters, the context and both attention layers.

Parameter names are the authors' inside each adapter and attention layer; the published card maps their file
(their whole ``CLIPModel``, CLIP included) onto ours. The authors hard-code ViT-L/14's widths (1024 in the adapter,
768 in the alignment); ours are read from the backbone, with GroupNorm at 8 channels per group (their 128 groups
of 1024). Where the image embedding and the text tower differ in width (tiny test models; ViT-L/14 has 768 for
both), the enhancer's attention projects keys and values from the embedding width.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector, required_backbone
from mirage_bench.detectors.clip.backbone import CLIP_BACKBONE_EXAMPLE, load_clip
from mirage_bench.detectors.clip.prompt_learner import PromptConfig, PromptLearner, tokenizer_for
from mirage_bench.detectors.clip.prompted_clip import check_clip, encode_text_prompted
from mirage_bench.detectors.clip.prompted_detector import TINY_CLIP_OVERRIDES
from mirage_bench.errors import ConfigError, ContractError


class FatFormerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_adapters: int = Field(3, ge=1, description="forgery-aware adapters, after every (layers / n)-th block "
                              "(README: --num_vit_adapter 3; the paper's ablation picks 3)")
    adapter_bottleneck: int = Field(64, ge=1, description="width of the image branch's 1x1 convolutions")
    adapter_scale: float = Field(0.1, description="factor on the image branch (the authors' adapter_scalar)")
    adapter_heads: int = Field(8, ge=1, description="heads of the two band attentions")
    adapter_dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the adapter (image branch, residuals, FFN)")
    norm_group_channels: int = Field(8, ge=1, description="channels per GroupNorm group of the DWT bands "
                                     "(the authors' GroupNorm(128, 1024))")
    n_ctx: int = Field(8, ge=1, description="learned context tokens (README: --num_context_embedding 8)")
    ctx_init: str | None = Field(None, description="initialise the context from this text; null = N(0, init_std) "
                                 "(the authors' default, --init_context_embedding '')")
    init_std: float = Field(0.02, gt=0, description="std of the random context")
    lga_heads: int = Field(12, ge=1, description="heads of the patch-based enhancer and the text-guided interactor")
    class_names: tuple[str, str] = Field(("real", "fake"), description="class words, real first")


def haar_dwt(x: Tensor) -> Tensor:
    """One-level orthonormal Haar DWT of ``[..., H, W]`` (H, W even) -> ``[..., 4, H/2, W/2]``, bands ordered as
    pytorch_wavelets' ``DWTForward(J=1, wave='haar')`` gives them (its low band, then its LH, HL, HH) with its signs:
    for each 2x2 block [[a, b], [c, d]]: (a+b+c+d, a+b-c-d, a-b+c-d, a-b-c+d) / 2."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.stack([a + b + c + d, a + b - c - d, a - b + c - d, a - b - c + d], dim=-3) / 2


def haar_idwt(bands: Tensor) -> Tensor:
    """The inverse of :func:`haar_dwt`: ``[..., 4, h, w]`` -> ``[..., 2h, 2w]`` (the transform is its own inverse
    up to the interleaving of the 2x2 blocks)."""
    ll, lh, hl, hh = bands.unbind(dim=-3)
    a, b = (ll + lh + hl + hh) / 2, (ll + lh - hl - hh) / 2
    c, d = (ll - lh + hl - hh) / 2, (ll - lh - hl + hh) / 2
    top = torch.stack([a, b], dim=-1).flatten(-2)  # [..., h, 2w]: a, b interleaved along the row
    bottom = torch.stack([c, d], dim=-1).flatten(-2)
    return torch.stack([top, bottom], dim=-2).flatten(-3, -2)  # [..., 2h, 2w]


class ForgeryAwareAdapter(nn.Module):
    """The authors' ``ForgeryAwareAdapterLayer`` on batch-first tokens ``[B, 1 + g*g, d]`` (class token first)."""

    def __init__(self, width: int, p: FatFormerParams) -> None:
        super().__init__()
        self.scale = p.adapter_scale
        self.first_conv_layer = nn.Conv1d(width, p.adapter_bottleneck, kernel_size=1)
        self.second_conv_layer = nn.Conv1d(p.adapter_bottleneck, width, kernel_size=1)
        self.freq_scale = nn.Parameter(torch.zeros(1))  # lambda: the frequency branch starts switched off
        self.dwt_norm = nn.GroupNorm(width // p.norm_group_channels, width)
        self.intra_band = nn.MultiheadAttention(width, p.adapter_heads, batch_first=True)  # across the 4 bands
        self.norm_intra = nn.LayerNorm(width)
        self.inter_band = nn.MultiheadAttention(width, p.adapter_heads, batch_first=True)  # across one band's positions
        self.norm_inter = nn.LayerNorm(width)
        self.linear1 = nn.Linear(width, 4 * width)
        self.linear2 = nn.Linear(4 * width, width)
        self.norm3 = nn.LayerNorm(width)
        self.dropout = nn.Dropout(p.adapter_dropout)

    def frequency(self, patches: Tensor) -> Tensor:
        """The frequency branch on the patch grid ``[B, d, g, g]``, returned on the same grid."""
        bands = haar_dwt(patches)  # [B, d, 4, g/2, g/2]
        batch, width, _, h, w = bands.shape
        x = self.dwt_norm(bands.flatten(3)).permute(0, 2, 3, 1)  # [B, 4, n, d], n = h*w
        n = h * w
        q = x.transpose(1, 2).reshape(batch * n, 4, width)  # each position: a sequence of its 4 bands
        across = self.intra_band(q, q, q, need_weights=False)[0].reshape(batch, n, 4, width).transpose(1, 2)
        x = self.norm_intra(x + self.dropout(across))
        q = x.reshape(batch * 4, n, width)  # each band: a sequence of its n positions
        within = self.inter_band(q, q, q, need_weights=False)[0].reshape(batch, 4, n, width)
        x = self.norm_inter(x + self.dropout(within))
        x = self.norm3(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))
        return haar_idwt(x.permute(0, 3, 1, 2).reshape(batch, width, 4, h, w))  # [B, d, g, g]

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        grid = round((tokens - 1) ** 0.5)
        patches = x[:, 1:].transpose(1, 2).reshape(batch, width, grid, grid)  # row-major patch order, as conv1 gives
        freq = self.frequency(patches).flatten(2).transpose(1, 2)  # [B, N, d]
        freq = torch.cat([freq.new_zeros(batch, 1, width), freq], dim=1)  # the class token: no frequency term
        down = self.dropout(F.relu(self.first_conv_layer(x.transpose(1, 2))))  # [B, r, 1 + N]
        image = self.second_conv_layer(down).transpose(1, 2) * self.scale
        return image + self.freq_scale * freq


def adapted_block(block: nn.Module, adapter: nn.Module, x: Tensor) -> Tensor:
    """An open_clip residual block with the adapter beside its MLP: ``x + attn``, then ``+ mlp(ln_2) + adapter``."""
    x = x + block.ls_1(block.attention(q_x=block.ln_1(x)))
    return x + block.ls_2(block.mlp(block.ln_2(x))) + adapter(x)


class CrossAttentionLayer(nn.Module):
    """Post-norm cross-attention then a ReLU FFN (4x wide), as the enhancer and the interactor are written:
    ``norm1(q + attn(q, m, m))``, then ``norm2(x + linear2(relu(linear1(x))))``."""

    def __init__(self, width: int, memory_width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, kdim=memory_width, vdim=memory_width, batch_first=True)
        self.norm1 = nn.LayerNorm(width)
        self.linear1 = nn.Linear(width, 4 * width)
        self.linear2 = nn.Linear(4 * width, width)
        self.norm2 = nn.LayerNorm(width)

    def forward(self, query: Tensor, memory: Tensor) -> Tensor:
        x = self.norm1(query + self.attn(query, memory, memory, need_weights=False)[0])
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


def adapter_blocks(n_blocks: int, n_adapters: int) -> list[int]:
    """Indices of the blocks that carry an adapter: the last block of each of ``n_adapters`` equal stages."""
    if n_blocks % n_adapters:
        raise ConfigError(f"params.num_adapters={n_adapters} must divide the image tower's {n_blocks} blocks "
                          f"(an adapter closes each of that many equal stages); pick a divisor of {n_blocks}")
    stage = n_blocks // n_adapters
    return [(i + 1) * stage - 1 for i in range(n_adapters)]


def _check_widths(p: FatFormerParams, vision: int, embed: int, text: int, grid: tuple[int, int], backbone: str) -> None:
    """One error naming the parameter and the widths it must divide, before any module is built."""
    needs = [("adapter_heads", p.adapter_heads, vision, "the image tower"), ("norm_group_channels", p.norm_group_channels,
             vision, "the image tower"), ("lga_heads", p.lga_heads, text, "the text tower"),
             ("lga_heads", p.lga_heads, embed, "the image embedding")]
    for name, value, width, what in needs:
        if width % value:
            raise ConfigError(f"params.{name}={value} must divide the width of {what} ({width}); pick a divisor of {width}")
    if grid[0] != grid[1] or grid[0] % 2:
        raise ConfigError(f"FatFormer's Haar DWT needs an even, square patch grid; backbone {backbone!r} has "
                          f"{grid[0]}x{grid[1]} patches (its image size / patch size). Pick a backbone whose grid is "
                          "even, e.g. ViT-L-14 (16x16) or ViT-B-16 (14x14)")


class FatFormer(Detector):
    """Frozen CLIP with forgery-aware adapters in its image tower; cosine logits to image-conditioned class prompts."""

    Params = FatFormerParams
    tiny_overrides = (*TINY_CLIP_OVERRIDES, "params.lga_heads=4", "params.adapter_bottleneck=16")

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        backbone = required_backbone(recipe, CLIP_BACKBONE_EXAMPLE)
        clip, self._identity = load_clip(backbone)
        check_clip(clip, 1, vision=False)
        visual, p = clip.visual, self.params
        if visual.proj is None:
            raise ContractError(f"FatFormer aligns projected image tokens with text embeddings; {backbone.name!r} has "
                                "no image projection (visual.proj is None)")
        vision, embed, text = int(visual.transformer.width), int(visual.output_dim), int(clip.transformer.width)
        _check_widths(p, vision, embed, text, tuple(visual.grid_size), backbone.name)
        self.hold_frozen("clip", clip)
        self.adapter_blocks = adapter_blocks(len(visual.transformer.resblocks), p.num_adapters)
        device = clip.token_embedding.weight.device
        with torch.device(device):
            self.adapters = nn.ModuleList([ForgeryAwareAdapter(vision, p) for _ in self.adapter_blocks])
            self.enhancer = CrossAttentionLayer(text, embed, p.lga_heads)  # context tokens attend to image tokens
            self.interactor = CrossAttentionLayer(embed, embed, p.lga_heads)  # patch tokens attend to class texts
        self.prompts = PromptLearner(clip, tokenizer_for(backbone.name), PromptConfig(
            n_ctx=p.n_ctx, depth=1, ctx_init=p.ctx_init, class_names=p.class_names, class_position="end",
            vision_prompts=False, init_std=p.init_std,
        ))

    def backbone_identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def image_tokens(self, images: Tensor) -> Tensor:
        """Every token of the adapted image tower after ``ln_post`` and the projection: ``[B, 1 + N, E]``."""
        visual = self.clip.visual
        adapters = dict(zip(self.adapter_blocks, self.adapters))
        x = visual._embeds(images)  # [B, 1 + N, d] after the positional embedding and ln_pre
        for i, block in enumerate(visual.transformer.resblocks):
            x = adapted_block(block, adapters[i], x) if i in adapters else block(x)
        return visual.ln_post(x) @ visual.proj

    def class_texts(self, tokens: Tensor) -> Tensor:
        """Each image's two class embeddings ``[B, 2, E]`` (real, fake): its enhanced context in both prompts."""
        batch = tokens.shape[0]
        context = self.prompts.text_prompts[0].unsqueeze(0).expand(batch, -1, -1)  # [B, n_ctx, Dt]
        context = self.enhancer(context, tokens)
        token_ids = self.prompts.token_ids.repeat(batch, 1)  # [2B, L]: real, fake, real, fake, ...
        ctx_index = self.prompts.ctx_index.repeat(batch, 1)
        text = encode_text_prompted(self.clip, token_ids, [context.repeat_interleave(2, dim=0)], ctx_index)
        return text.view(batch, 2, -1)

    def class_logits(self, images: Tensor) -> Tensor:
        """``s * (cos(f_cls, t) + cos(aligned patches, t))`` in fp32, ``[B, 2]`` (real, fake)."""
        tokens = self.image_tokens(images)
        texts = self.class_texts(tokens)
        aligned = self.interactor(tokens[:, 1:], texts).mean(dim=1)  # [B, E]
        with torch.autocast(device_type=images.device.type, enabled=False):
            t = F.normalize(texts.float(), dim=-1)
            scale = self.clip.logit_scale.detach().float().exp()
            cls = torch.einsum("be,bce->bc", F.normalize(tokens[:, 0].float(), dim=-1), t)
            patches = torch.einsum("be,bce->bc", F.normalize(aligned.float(), dim=-1), t)
            return scale * cls + scale * patches

    def forward(self, images: Tensor) -> Tensor:
        logits = self.class_logits(images)
        return self.check_output(images, logits[:, 1] - logits[:, 0])

    def training_loss(self, images: Tensor, labels: Tensor, image_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy over the two summed cosine logits (the paper's augmented contrastive objective)."""
        logits = self.class_logits(images)
        loss = F.cross_entropy(logits, labels.long().to(logits.device))
        return loss, {"loss": float(loss.detach())}
