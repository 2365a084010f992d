"""Model files: saving, finding by name or path, verifying by SHA-256.

A model file is a plain ``torch.save`` dict of tensors and JSON-able values, so it
loads with ``weights_only=True`` (no code runs on load) and ``strict=True``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic import atomic_write
from .defaults import DEFAULT_MODEL
from .errors import ModelError
from .model import ArchConfig, Autoencoder

FORMAT = "melcodec-model"
FORMAT_VERSION = 1
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
# The shipped models' published hashes (`sha256sum *.pt`): a shipped file that
# differs was corrupted or altered, and is refused before it is unpickled.
SUMS = "SHA256SUMS"


@dataclass
class LoadedModel:
    name: str
    sha256: bytes
    path: Path
    net: Autoencoder
    card: dict
    recipe: dict
    probability: dict | None = field(default=None)


def model_dirs() -> list[Path]:
    """Where names are looked up: $MELCODEC_MODELS (colon-separated), then models/."""
    extra = os.environ.get("MELCODEC_MODELS", "")
    return [Path(p) for p in extra.split(os.pathsep) if p] + [_REPO_MODELS]


def resolve(name_or_path: str | os.PathLike) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".pt" or os.sep in str(name_or_path) or candidate.exists():
        if not candidate.is_file():
            raise ModelError(f"model file not found: {candidate}")
        return candidate
    path = _find_named(str(name_or_path))
    if path is None:
        raise ModelError(
            f"unknown model {str(name_or_path)!r}; available: {', '.join(available())}"
        )
    return path


def _find_named(name: str) -> Path | None:
    for folder in model_dirs():
        path = folder / f"{name}.pt"
        if path.is_file():
            return path
    return None


def resolve_name(name: str) -> Path:
    """A model by name only, never as a path: for names read from untrusted files."""
    # A name must be a file name here: no folders, no control characters, and
    # short enough that NAME.pt is a legal file name (255 bytes).
    plain = name and os.sep not in name and "/" not in name and not name.startswith(".")
    if not plain or not name.isprintable() or len(name.encode()) > 255 - len(".pt"):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise ModelError(f"file names an invalid model {shown!r}; pass --model")
    path = _find_named(name)
    if path is not None:
        return path
    raise ModelError(
        f"file was made with model {name!r}, which is not installed; pass --model "
        f"(available: {', '.join(available())})"
    )


def available() -> list[str]:
    names = {p.stem for d in model_dirs() if d.is_dir() for p in d.glob("*.pt")}
    return sorted(names) or ["(none)"]


def file_sha256(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def published_sha256(path: Path) -> bytes | None:
    """The hash a model file next to a SHA256SUMS list must have, if it is listed."""
    sums = path.parent / SUMS
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name.strip() == path.name:
            return bytes.fromhex(digest)
    return None


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
    sha256 = file_sha256(path)
    published = published_sha256(path)
    if published is not None and published != sha256:
        raise ModelError(
            f"model file {path} does not match its SHA-256 in {path.parent / SUMS} "
            "(corrupted or altered): restore it from the repository"
        )
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"not a melcodec model file: {path} ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"not a melcodec model file: {path}")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"model file version {blob.get('format_version')} is not supported")
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


def save_model(
    path: str | os.PathLike,
    net: Autoencoder,
    card: dict,
    recipe: dict,
    probability: dict | None = None,
    half: bool = False,
) -> bytes:
    """Write a model file atomically; returns its SHA-256.

    ``half`` stores floating-point weights as float16 (half the size); they load
    into the float32 network exactly, so the file defines the codec's bits.
    """
    path = Path(path)
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
    return file_sha256(path)
