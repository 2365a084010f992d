"""Named training recipes: the paper's as written, and ours for a CPU budget.

A recipe fixes the architecture variant and the optimisation defaults; command
line options override single values. docs/training.md has the evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .model import ArchConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    arch: ArchConfig = field(default_factory=ArchConfig)
    steps: int = 425
    batch_size: int = 64
    crop: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01  # AdamW's default
    # "constant" as in the paper, or "cosine" decay to 0 over the run.
    schedule: str = "constant"
    # Size of the fixed noise set (the paper's 5,440 = 425 steps x 64 / 5 epochs); 0 = fresh.
    noise_images: int = 5440

    def to_dict(self) -> dict:
        out = asdict(self)
        out["arch"] = self.arch.to_dict()
        return out

    def with_overrides(self, **values) -> Recipe:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


RECIPES = {
    "paper": Recipe(name="paper"),
    # Our CPU recipe: no BatchNorm before the encoder's Tanh (it saturates the
    # soft quantiser and starves the encoder of gradient), small crops for more
    # steps per minute, fresh noise, cosine decay.
    "cpu": Recipe(
        name="cpu",
        arch=ArchConfig(final_norm=False),
        steps=1500,
        batch_size=16,
        crop=128,
        schedule="cosine",
        noise_images=0,
    ),
}
DEFAULT_RECIPE = "cpu"
