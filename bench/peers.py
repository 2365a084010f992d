"""Our models and other codecs side by side on music-dev, at their real bitrates.

Every system gets the same 16 kHz mono input; Opus (opus-tools) at 6, 8 and 12
kbit/s, also with wideband forced at 6 and 8 (opusenc otherwise narrows the band
at these rates); MP3 (lame) at 8 kbit/s; and the Griffin-Lim ceiling. Peers'
outputs are aligned to the input first. Needs Debian's opus-tools and lame.

    python bench/peers.py [--models msssim-music,default,...]
"""

from __future__ import annotations

import argparse

from common import machine, music_dev, run_systems, save

from melcodec import Codec, DecodeOptions, benchmark
from melcodec.peers import default_peers
from melcodec.zoo import DEFAULT_MODEL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=f"{DEFAULT_MODEL},default")
    args = ap.parse_args()
    options = DecodeOptions()
    systems = [benchmark.CodecSystem(Codec.load(n), options) for n in args.models.split(",")]
    systems += default_peers()
    rows, summary = run_systems(systems, "peers")
    files = music_dev()
    m = machine()
    overhead = [
        f"- {s['system']}: {s['overhead_bytes_per_file']:.0f} bytes per file"
        for s in summary
        if s["overhead_bytes_per_file"] is not None
    ]
    text = "\n".join(
        [
            f"{len(files)} music-dev clips (4.2 s each), 16 kHz mono input to every system; "
            f"{m['cpu']}, {m['torch_threads']} threads, {m['date']}. MSE/NLPD/MS-SSIM: "
            "spectrogram domain (model input vs output tile; '-' for peers, which have "
            "none); e2e: original vs decoded audio through the front end. kbit/s from the "
            "file bytes, container included.",
            "",
            benchmark.table(summary),
            "",
            "Container overhead (included in kbit/s above):",
            *overhead,
        ]
    )
    save("peers", {"machine": m, "summary": summary, "files": rows}, text)


if __name__ == "__main__":
    main()
