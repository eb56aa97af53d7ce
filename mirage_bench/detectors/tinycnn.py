"""TinyCNN: the reference detector. Small enough for tests, and the example to copy for a new one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector


class TinyCNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(16, ge=1, description="channels of the first conv; doubled at each stage")
    stages: int = Field(3, ge=1, le=6)


class TinyCNN(Detector):
    """A few conv-BN-ReLU stages, global average pooling and a linear fake logit. Trains all weights."""

    Params = TinyCNNParams
    tiny_overrides = ("params.width=4", "params.stages=2", "input.size=16", "train.batch_size=4")

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        layers: list[nn.Module] = []
        channels, width = 3, self.params.width
        for _ in range(self.params.stages):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels, width = width, width * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, images: Tensor) -> Tensor:
        pooled = self.features(images).mean(dim=(2, 3))  # [B, C]
        return self.check_output(images, self.head(pooled).squeeze(1).float())
