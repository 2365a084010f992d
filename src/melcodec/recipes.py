"""Named training recipes: the paper's as written, and ours for a CPU budget.

A recipe fixes the architecture variant and the optimisation defaults; command
line options override single values. docs/training.md has the evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .arch import ArchConfig


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
    # "uniform": i.i.d. U[0, 1] pixels as in the paper; "octaves": data.octave_noise;
    # "aniso": the same with each octave stretched along one axis (aniso=True).
    noise: str = "uniform"
    # Revive dead latent channels every this many steps (revive.py); 0 = never.
    revive_every: int = 0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["arch"] = self.arch.to_dict()
        return out

    def with_overrides(self, **values) -> Recipe:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


_CPU_V1 = Recipe(
    name="cpu-v1",
    arch=ArchConfig(final_norm=False),
    steps=1500,
    batch_size=16,
    crop=128,
    schedule="cosine",
    noise_images=0,
)

_CPU_UNIFORM = replace(
    _CPU_V1, name="cpu-uniform", arch=ArchConfig(final_norm=False, quantiser="ste")
)

_CPU_OCTAVES = replace(_CPU_UNIFORM, name="cpu-octaves", noise="octaves", revive_every=100)
_CPU = replace(_CPU_OCTAVES, name="cpu", noise="aniso")

RECIPES = {
    "paper": Recipe(name="paper"),
    # The shipped default model's recipe: no BatchNorm before the encoder's Tanh
    # (with it, MSE training collapses to grey), small crops for more steps per
    # minute, fresh noise, cosine decay.
    "cpu-v1": _CPU_V1,
    # cpu-v1 with a straight-through quantiser: better on music after noise
    # training under both NLPD and MSE (docs/training.md, ablation).
    "cpu-uniform": _CPU_UNIFORM,
    # cpu-uniform on noise with energy at every scale instead of i.i.d. pixels: the
    # change that makes noise-trained models transfer to music (docs/training.md).
    # Dead latent channels revived every 100 steps (revive.py): MSE on music left
    # 25-28 of 128 channels constant without it; a no-op where none dies. `cpu`
    # until 2026-12-07: the noise models shipped before then were trained on it.
    "cpu-octaves": _CPU_OCTAVES,
    # cpu-octaves with streaks both ways in the noise (data.octave_noise, aniso):
    # NLPD on it led octave noise by 0.013-0.022 MS-SSIM on music at steps 250-500 of
    # 2,000 (docs/training.md).
    "cpu": _CPU,
    # `cpu` at the paper's batch and crop, for a GPU: 1,500 steps take 55-75 s on
    # one H100 (37-50 ms per step), so the six zoo models fit one 10-minute call;
    # 32x the pixels of 1,500 `cpu` steps.
    "gpu": replace(_CPU, name="gpu", batch_size=64, crop=256, steps=1500),
}
DEFAULT_RECIPE = "cpu"
# Kinds of training noise (data.NoiseImages): i.i.d. pixels as in the paper,
# energy at every scale, or that with streaks both ways.
NOISE_KINDS = ("uniform", "octaves", "aniso")
