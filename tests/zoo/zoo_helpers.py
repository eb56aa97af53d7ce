"""Constants and writers shared by the published-checkpoint tests (imported by name: tests use importlib mode)."""

from __future__ import annotations

from pathlib import Path

import torch

FIXTURE = Path(__file__).parents[1] / "fixtures" / "published" / "univfd_fc_weights.pth"
FIXTURE_SHA256 = "477100745713bcc957beb2b40859536859b6483fd6301b3b9293151b194c7847"
#: A random open_clip CLIP whose image embedding is 768-d like ViT-L/14's, at 32 px and three tiny blocks.
TINY_768 = "zoo-tiny-clip-768"
TINY_CLIP = (f"backbone.name={TINY_768}", "backbone.pretrained=none", "input.size=32", "input.resize=32")


def save(obj: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path
