"""open_clip's nn.MultiheadAttention against our SelfAttention, then also our one-op QuickGELU, then also the last
block computed for the class token alone (``class_token_block``, as UnivFD runs its tower), in a CLIP vision tower,
in one run.

For each tower (baseline: open_clip's own modules, same run, same random weights):
  - model-only forward images/s: random input on the device, warmed up, synchronised; bf16 autocast on
    CUDA, fp32 on a CPU (where nn.MultiheadAttention takes its fused inference kernel); with ``--compile``
    also under ``torch.compile`` (ViT-L/14: about a minute of compiling per module);
  - MB per image that the ops other than matmuls and attention move (copies, bias adds, norms, activations),
    counted from the dispatched aten ops' tensor sizes at batch 2 under bf16 autocast, with
    nn.MultiheadAttention on the functional path that CUDA autocast and training take;
  - GFLOP per image (``torch.utils.flop_counter``, same path).

With ``--sdpa-backends flash,cudnn`` (CUDA), SelfAttention is also timed eager with SDPA held to each backend
in turn (``torch.nn.attention.sdpa_kernel``), against its row with PyTorch's own choice: which attention
kernel suits ViT-L/14's 257 tokens of 16 heads x 64 on this card.

    python benchmarks/attention_throughput.py --device cuda --compile                 # H100: about 3 minutes
    python benchmarks/attention_throughput.py --device cuda --sdpa-backends flash,cudnn,efficient
    python benchmarks/attention_throughput.py --device cpu --backbone ViT-B-16 --batch 4 --iters 2
"""

from __future__ import annotations

import argparse
import copy
from collections import Counter

import torch
from eval_throughput import model_only, print_table  # this folder is on sys.path when the script runs
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

COMPUTE = {"mm", "addmm", "bmm", "convolution"}  # plus every scaled_dot_product op
VIEWS = {"view", "_unsafe_view", "t", "transpose", "permute", "unsqueeze", "squeeze", "expand", "select", "slice",
         "unbind", "split", "split_with_sizes", "alias", "detach", "as_strided", "_reshape_alias"}


def is_weight(t: torch.Tensor) -> bool:
    """A parameter, or a view of one (``class_token_block`` projects with slices of the attention's weight)."""
    return isinstance(t, nn.Parameter) or isinstance(t._base, nn.Parameter)


class ActivationTraffic(TorchDispatchMode):
    """Bytes read and written by each dispatched op on activations (parameters and weight casts left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if name in VIEWS or any(is_weight(t) for t in inputs) and name == "_to_copy":
            return out
        tensors = [t for t in inputs if not is_weight(t)]
        tensors += [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self.bytes[name] += sum(t.numel() * t.element_size() for t in tensors if t.dim() > 1)
        return out


@torch.no_grad()
def counted(visual: nn.Module, size: int, device: torch.device) -> tuple[float, float]:
    """MB per image moved by the ops that are neither matmuls nor attention (see the module docstring), and
    GFLOP per image."""
    from torch.utils.flop_counter import FlopCounterMode

    traffic, flops, batch = ActivationTraffic(), FlopCounterMode(display=False), 2
    x = torch.randn(batch, 3, size, size, device=device)
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16), flops, traffic:
            visual(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    moved = sum(v for k, v in traffic.bytes.items() if k not in COMPUTE and "scaled_dot_product" not in k)
    return moved / batch / 1e6, flops.get_total_flops() / batch / 1e9


SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}


def rate_cell(rate: float, baseline: float) -> str:
    return f"{rate:,.{0 if rate >= 100 else 2}f} ({rate / baseline:.2f}x)"


def backend_rate(visual: nn.Module, backend: str, size: int, device: torch.device, batch: int, iters: int, bf16: bool) -> float | str:
    """Eager images/s with SDPA held to one backend, or why that backend cannot run these inputs (a measured
    outcome on this card, printed in the table)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(getattr(SDPBackend, SDPA_BACKENDS[backend])):
        try:
            return model_only(visual, size, device, batch, iters, bf16)
        except RuntimeError as exc:  # "No available kernel", printed as the row's result
            return f"unavailable: {str(exc).splitlines()[0][:60]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="ViT-L-14-quickgelu", help="an open_clip architecture")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="also time both modules under torch.compile")
    parser.add_argument("--sdpa-backends", default="", help=f"CUDA: also time SelfAttention eager with SDPA held to each of "
                        f"these backends (comma-separated: {', '.join(SDPA_BACKENDS)})")
    args = parser.parse_args()
    backends = [b.strip() for b in args.sdpa_backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(SDPA_BACKENDS))
    if unknown:
        parser.error(f"--sdpa-backends: unknown {', '.join(unknown)}; choose from {', '.join(SDPA_BACKENDS)}")

    import open_clip

    from mirage_bench.detectors.clip.class_token_block import use_class_token_block
    from mirage_bench.detectors.clip.attention import use_self_attention
    from mirage_bench.detectors.clip.backbone import register_model_configs
    from mirage_bench.detectors.clip.quick_gelu import use_fused_quick_gelu
    from mirage_bench.scoring.fast import compiled

    device = torch.device(args.device)
    bf16 = device.type == "cuda"
    register_model_configs()
    torch.manual_seed(0)
    theirs = open_clip.create_model(args.backbone, pretrained=None).visual.to(device).eval().requires_grad_(False)
    ours = copy.deepcopy(theirs)
    swapped = use_self_attention(ours)
    fused = copy.deepcopy(ours)
    activations = use_fused_quick_gelu(fused)
    class_token = copy.deepcopy(fused)
    size = theirs.image_size[0]

    rows, base = [], {}
    towers = [("open_clip nn.MultiheadAttention", theirs), (f"SelfAttention ({swapped} blocks)", ours)]
    towers += [(f"SelfAttention + one-op QuickGELU ({activations})", fused)] if activations else []  # ViT-L-14-quickgelu
    towers += [("... + class-token last block", class_token)] if use_class_token_block(class_token) else []
    for name, visual in towers:
        rates = {"eager": model_only(visual, size, device, args.batch, args.iters, bf16)}
        if args.compile:
            rates["compiled"] = model_only(compiled(visual), size, device, args.batch, args.iters, bf16)
        base = base or rates
        cells = [rate_cell(r, base[k]) for k, r in rates.items()]
        moved, gflop = counted(visual, size, device)
        rows.append((name, *cells, f"{moved:,.1f}", f"{gflop:,.1f}"))
        print(" | ".join(rows[-1]), flush=True)  # partial results survive a time limit

    for backend in backends:
        rate = backend_rate(ours, backend, size, device, args.batch, args.iters, bf16)
        cells = [rate if isinstance(rate, str) else rate_cell(rate, base["eager"])] + ["-"] * args.compile
        rows.append((f"SelfAttention, SDPA {backend} only", *cells, "-", "-"))
        print(" | ".join(rows[-1]), flush=True)

    title = (f"{args.backbone} vision tower (random weights), batch {args.batch}, {'bf16 autocast' if bf16 else 'fp32'}, "
             f"{torch.cuda.get_device_name(0) if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}")
    print_table(title, ("attention", "eager images/s", *(["compiled images/s"] if args.compile else []), "MB/image, other ops", "GFLOP/image"), rows)


if __name__ == "__main__":
    main()
