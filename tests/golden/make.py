"""Regenerate the golden .mlc files and what they must decode to.

    python tests/golden/make.py          # the files that are missing
    python tests/golden/make.py --all    # every file, anew

Remake existing files only when a format or probability change is meant:
tests/test_golden.py then pins the new files. A file stays valid while the model
decodes it (``default``'s card lists the earlier model files its old files name).
For each container version and probability model, a file made from the first
2 s of examples/chipdisko-excerpt.flac with the shipped model ``default``, and
NAME.npz with
the latent bits (packed), each tile's min and max, and the 16 kHz decode as
16-bit PCM (float32 decoder, default options).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

from melcodec import bitstream  # noqa: E402
from melcodec.codec import Codec  # noqa: E402
from melcodec.zoo import load_model  # noqa: E402

MODEL = "default"
SECONDS = 2.0
# Version 1 has no writer any more: its golden file is the one melcodec 0.1 made
# (from the first 4.208 s of the example); only its expectations are remade.
V1_FILE = HERE / f"v1-{MODEL}-static.mlc"


def golden_codec(prob_model_id: int | None = None) -> Codec:
    return Codec(load_model(MODEL), prob_model_id, decoder_precision="float32")


def source() -> tuple[np.ndarray, int]:
    x, rate = sf.read(ROOT / "examples" / "chipdisko-excerpt.flac", dtype="float32")
    return x[: int(SECONDS * rate)], rate


def expected(codec: Codec, data: bytes) -> dict[str, np.ndarray]:
    reader = codec.open(io.BytesIO(data))
    bits, lo, hi = zip(*(codec.read_bits(reader, i) for i in range(len(reader))), strict=True)
    wave, _ = codec.decode(data)
    pcm = np.round(np.clip(wave.numpy(), -1, 1) * 32767).astype(np.int16)
    return {
        "bits": np.packbits(np.stack(bits), axis=-1),
        "lo": np.array(lo, np.float32),
        "hi": np.array(hi, np.float32),
        "pcm16": pcm,
    }


def main() -> None:
    x, rate = source()
    files = {}
    remake = "--all" in sys.argv[1:]
    for prob_id, name in ((0, "uniform"), (1, "static"), (4, "checkerboard")):
        stem = f"v2-{MODEL}-{name}"
        if remake or not (HERE / f"{stem}.mlc").is_file():
            files[stem] = (golden_codec(prob_id), golden_codec(prob_id).encode(x, rate))
    if remake:
        files[V1_FILE.stem] = (golden_codec(), V1_FILE.read_bytes())
    for name, (codec, data) in files.items():
        header = bitstream.Reader(io.BytesIO(data)).header
        (HERE / f"{name}.mlc").write_bytes(data)
        np.savez_compressed(HERE / f"{name}.npz", **expected(codec, data))
        print(f"{name}: {len(data)} bytes, version {header.version}, prob {header.prob_model_id}")


if __name__ == "__main__":
    main()
