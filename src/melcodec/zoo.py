"""Model files: saving, finding by name or path, verifying by SHA-256.

A model file is a plain ``torch.save`` dict of tensors and JSON-able values, so it
loads with ``weights_only=True`` (no code runs on load) and ``strict=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic import atomic_write
from .defaults import DEFAULT_MODEL
from .errors import ModelError
from .model import ArchConfig, Autoencoder

# Finding model files and their hashes needs no torch (modelfiles.py); here for callers.
from .modelfiles import (  # noqa: F401
    FORMAT,
    FORMAT_VERSION,
    SUMS,
    available,
    check_format,
    checked_sha256,
    file_sha256,
    model_dirs,
    published_sha256,
    resolve,
    resolve_name,
)


@dataclass
class LoadedModel:
    name: str
    sha256: bytes
    path: Path
    net: Autoencoder
    card: dict
    recipe: dict
    probability: dict | None = field(default=None)

    def decodes(self, sha256: bytes, prob_model_id: int) -> bool:
        """Whether a file naming this model's hash and that probability model decodes
        here as it did where it was made: this file, or an earlier one that differed
        only in tables that the file does not use (``tables.earlier_files``)."""
        if sha256 == self.sha256:
            return True
        return any(
            entry.get("sha256") == sha256.hex()
            and prob_model_id in entry.get("probability_ids", ())
            for entry in self.card.get("earlier_files", [])
        )


def publish(path: Path) -> None:
    """Record a model file's hash in its folder's SHA256SUMS (after installing it there)."""
    sums = path.parent / SUMS
    lines = sums.read_text().splitlines() if sums.is_file() else []
    kept = [line for line in lines if line.partition("  ")[2].strip() != path.name]
    kept.append(f"{file_sha256(path).hex()}  {path.name}")
    text = "".join(line + "\n" for line in sorted(kept, key=lambda x: x.partition("  ")[2]))
    atomic_write(sums, lambda fh: fh.write(text.encode()))


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str = "cpu") -> LoadedModel:
    path = resolve(name_or_path)
    sha256 = checked_sha256(path)
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"not a melcodec model file: {path} ({type(exc).__name__})") from None
    check_format(blob, path)
    try:
        net = Autoencoder(ArchConfig.from_dict(blob["arch"]))
        net.load_state_dict(blob["weights"], strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"model file {path} does not match its architecture: {exc}") from None
    net.to(device).eval()
    card = blob.get("card", {})
    return LoadedModel(
        name=card.get("name", path.stem),
        sha256=sha256,
        path=path,
        net=net,
        card=card,
        recipe=blob.get("recipe", {}),
        probability=blob.get("probability"),
    )


def check_writable(path: Path, published: bool = False) -> None:
    """Refuse to overwrite a model file its folder's SHA256SUMS lists, unless the
    write is to be ``published`` (its new hash recorded): otherwise the file
    written would be refused as altered the next time it loads."""
    if not published and published_sha256(path) is not None:
        raise ModelError(
            f"{path} is a published model (listed in {path.parent / SUMS}): "
            "write the new file elsewhere (--out)"
        )


def save_model(
    path: str | os.PathLike,
    net: Autoencoder,
    card: dict,
    recipe: dict,
    probability: dict | None = None,
    half: bool = False,
    published: bool = False,
) -> bytes:
    """Write a model file atomically; returns its SHA-256.

    ``half`` stores floating-point weights as float16 (half the size); they load
    into the float32 network exactly, so the file defines the codec's bits.
    ``published`` records the new hash in the folder's SHA256SUMS; without it a
    file that list names is refused before anything is written.
    """
    path = Path(path)
    check_writable(path, published)
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": net.cfg.to_dict(),
        "weights": weights,
        "recipe": recipe,
        "card": card,
        "probability": probability,
    }
    atomic_write(path, lambda fh: torch.save(blob, fh))
    if published:
        publish(path)
    return file_sha256(path)
