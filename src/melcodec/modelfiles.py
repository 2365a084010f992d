"""Model files without torch: finding them by name or path, their hashes, their cards.

Split from ``zoo.py`` (which loads and saves the networks) so that commands that
only look at model files (``melcodec models``, a file's model name) start without
importing torch.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

from .errors import ModelError

FORMAT = "melcodec-model"
FORMAT_VERSION = 1
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
# The shipped models' published hashes (`sha256sum *.pt`): a shipped file that
# differs was corrupted or altered, and is refused before it is unpickled.
SUMS = "SHA256SUMS"


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


def checked_sha256(path: Path) -> bytes:
    """A model file's SHA-256, refused if it differs from the one its folder publishes."""
    sha256 = file_sha256(path)
    published = published_sha256(path)
    if published is not None and published != sha256:
        raise ModelError(
            f"model file {path} does not match its SHA-256 in {path.parent / SUMS} "
            "(corrupted or altered): restore it from the repository"
        )
    return sha256


def check_format(blob: object, path: Path) -> None:
    """Refuse an unpickled file that is not a melcodec model of a version this reads."""
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"not a melcodec model file: {path}")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"model file version {blob.get('format_version')} is not supported")


class _CardReader(pickle.Unpickler):
    """Reads a model file's pickle with every tensor left out: plain values only."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module.split(".")[0] == "torch":
            # Tensors, storages and dtypes: the card needs none of them.
            return _left_out
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model file")

    def persistent_load(self, pid):
        return None


def _left_out(*args, **kwargs) -> None:
    return None


def read_file(path: Path) -> dict:
    """A model file's dict with its tensors as None, checked as :func:`zoo.load_model` does."""
    sha256 = checked_sha256(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            blob = _CardReader(io.BytesIO(archive.read(pickled))).load()
    except (OSError, StopIteration, zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as exc:
        raise ModelError(f"not a melcodec model file: {path} ({type(exc).__name__})") from None
    check_format(blob, path)
    return dict(blob, sha256=sha256)
