"""The autoencoder's architecture settings: plain data, no torch (recipes and the
command line read them without loading torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ArchConfig:
    channels: int = 128
    latent_channels: int = 128
    layers: int = 4
    encoder_kernel: int = 5
    negative_slope: float = 0.2
    # The paper puts BatchNorm before the encoder's final Tanh; see docs/training.md.
    final_norm: bool = True
    # "soft": tanh(2 s z), the paper's soft assignment to {-1, +1};
    # "ste": hard sign forward, identity gradient backward (straight-through).
    quantiser: str = "soft"
    softness: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ArchConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown architecture fields: {sorted(unknown)}")
        return cls(**data)
