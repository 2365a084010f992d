#!/usr/bin/env bash
# The synthesis study behind decode's defaults (README "What the listener gets"):
# inverse mel, phase start and iterations, level-envelope span, then the
# before/after table and the codec speed. About 15 minutes on 2 cores; run it
# on an otherwise idle machine, the timings are compared across rows.
set -euo pipefail
cd "$(dirname "$0")"
inverses="pinv/random/32/off"
for inv in pinv tsvd:1e-2 tsvd:1e-3 tikhonov:1e-3 tikhonov:1e-2 nnls:10 nnls:50 interp; do
  inverses+=",$inv/pghi/16/on"
done
inverses+=",tsvd:1e-2/random/32/off,tsvd:1e-2/pghi/16/off,interp/random/32/off"
python synthesis.py --name inverse_mel --variants "$inverses"
starts=""
for start in random pghi; do
  for n in 0 4 8 16 32 64; do starts+=",tsvd:1e-2/$start/$n/on"; done
done
python synthesis.py --name phase_start --variants "${starts#,}"
spans="tsvd:1e-2/pghi/16/off"
for frames in 256 64 32 16 8; do spans+=",tsvd:1e-2/pghi/16/on:$frames"; done
python synthesis.py --name level_spans --variants "$spans"
python before_after.py
python codec_speed.py
