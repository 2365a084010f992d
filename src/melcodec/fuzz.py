"""Fuzzing the decoder: damaged and crafted copies of real .mlc files, and the rule they must meet.

Two families of cases, drawn from a seeded generator so that every failure can be
replayed by its number:

- damage, as disks and networks make it: bit flips, truncation, appended or
  inserted bytes. The CRCs catch these.
- crafting, as a buggy writer or an attacker makes it: a header or chunk field set
  to 0, 1, its type's maximum, a random or a non-finite value; chunks swapped,
  duplicated or dropped; payloads cut, grown or replaced; all written with valid
  CRCs (``bitstream.pack_unchecked``), so only the decoder's own checks stand.

Each case is decoded through ``melcodec.decompress`` (``decode_case``). The rule
(``check``): a case decodes to finite audio, or is refused with
melcodec's own one-line error; nothing else, within a time and memory bound.
"""

from __future__ import annotations

import dataclasses
import io
import random
import resource
import signal
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from . import bitstream
from .api import decompress
from .codec import DecodeOptions
from .errors import MelcodecError

DAMAGE = ("flip", "truncate", "append", "insert")
CRAFT = ("header_field", "model_name", "chunk_field", "payload", "levels", "tiles")
KINDS = DAMAGE + CRAFT
# What a decode of one of these small files may take (CPU seconds) and allocate (MB beyond
# what the process maps already).
TIME_LIMIT_S = 20.0
MEMORY_LIMIT_MB = 1024
# Phase reconstruction is not what is fuzzed: no Griffin-Lim iterations keeps decodes
# short. Each round of kinds is decoded at 16 kHz, the next at the header's source rate.
_OPTIONS = (DecodeOptions(gl_iters=0), DecodeOptions(gl_iters=0, sample_rate="source"))


@dataclass(frozen=True)
class Outcome:
    case: int
    kind: str
    result: str  # "decoded", "refused", or a failure: "crash", "nonfinite", "hang", "memory"
    detail: str
    seconds: float

    @property
    def failed(self) -> bool:
        return self.result not in ("decoded", "refused")


def _extremes(code: str) -> list:
    if code == "f":
        return [0.0, 1.0, -1.0, 3e38, -3e38, float("nan"), float("inf"), float("-inf")]
    if code == "32s":
        return [bytes(32), bytes(range(32))]
    top = (1 << (8 * struct.calcsize(code))) - 1
    return [0, 1, 2, top, top - 1, top // 2 + 1]


def _random_value(rng: random.Random, code: str):
    if code == "f":
        return struct.unpack("<f", rng.randbytes(4))[0]
    if code == "32s":
        return rng.randbytes(32)
    return rng.getrandbits(8 * struct.calcsize(code))


def _damage(rng: random.Random, kind: str, data: bytes) -> bytes:
    raw = bytearray(data)
    if kind == "flip":
        for _ in range(rng.choice((1, 1, 2, 8))):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del raw[rng.randrange(len(raw)) :]
    elif kind == "append":
        raw += rng.randbytes(rng.choice((1, 4, 17, 1000)))
    else:
        at = rng.randrange(len(raw) + 1)
        raw[at:at] = rng.randbytes(rng.choice((1, 4, 17)))
    return bytes(raw)


def _craft(rng: random.Random, kind: str, header, chunks: list) -> bytes:
    chunks = list(chunks)
    if kind == "header_field":
        field = rng.choice(bitstream.FIELDS)
        pick = _extremes(field.code) if rng.random() < 0.7 else [_random_value(rng, field.code)]
        header = dataclasses.replace(header, **{field.name: rng.choice(pick)})
        if rng.random() < 0.3:
            # A second field moved to agree with the first, as a careful forger would.
            other = rng.choice(bitstream.FIELDS)
            extreme = rng.choice(_extremes(other.code))
            header = dataclasses.replace(header, **{other.name: extreme})
    elif kind == "model_name":
        name = rng.choice(["", "x" * 255, "../../etc/passwd", "/tmp/model.pt", "nö", "msssim-mus"])
        header = dataclasses.replace(header, model_name=name)
    elif kind == "tiles":
        i, j = rng.randrange(len(chunks)), rng.randrange(len(chunks))
        action = rng.choice(("swap", "duplicate", "drop", "count"))
        if action == "swap":
            chunks[i], chunks[j] = chunks[j], chunks[i]
        elif action == "duplicate":
            chunks.insert(i, chunks[j])
        elif action == "drop" and len(chunks) > 1:
            del chunks[i]
        if action == "count" or rng.random() < 0.5:
            header = dataclasses.replace(header, num_tiles=len(chunks))
    else:
        i = rng.randrange(len(chunks))
        c = chunks[i]
        if kind == "chunk_field":
            name = rng.choice(("lo", "hi", "coding"))
            code = "B" if name == "coding" else "f"
            value = rng.choice(_extremes(code) + [_random_value(rng, code)])
            c = dataclasses.replace(c, **{name: value})
        elif kind == "payload":
            how = rng.choice(("cut", "grow", "random", "empty", "zero"))
            payload = {
                "cut": c.payload[: rng.randrange(len(c.payload) + 1)],
                "grow": c.payload + rng.randbytes(4 * rng.randrange(1, 64)),
                "random": rng.randbytes(4 * rng.randrange(1, 1200)),
                "empty": b"",
                "zero": bytes(len(c.payload)),
            }[how]
            c = dataclasses.replace(c, payload=payload)
        else:
            size = rng.choice((len(c.levels), len(c.levels), 0, len(c.levels) + 1))
            c = dataclasses.replace(c, levels=rng.randbytes(size))
        chunks[i] = c
    return bitstream.pack_unchecked(header, chunks)


def cases(
    seeds: list[bytes], count: int, seed: int = 0, start: int = 0
) -> Iterator[tuple[int, str, bytes]]:
    """``(number, kind, file bytes)`` for cases ``start .. start + count - 1``.

    Case ``n`` depends only on ``seed``, ``n`` and the seed files, so one case can
    be replayed alone.
    """
    parsed = []
    for data in seeds:
        reader = bitstream.Reader(io.BytesIO(data))
        parsed.append((data, reader.header, [reader.chunk(i) for i in range(len(reader))]))
    for n in range(start, start + count):
        rng = random.Random(f"{seed}:{n}")
        data, header, chunks = rng.choice(parsed)
        kind = KINDS[n % len(KINDS)]
        if kind in DAMAGE:
            yield n, kind, _damage(rng, kind, data)
        else:
            yield n, kind, _craft(rng, kind, header, chunks)


def decode_case(n: int, data: bytes) -> np.ndarray:
    """Case ``n`` decoded as the fuzz runs decode it: the model the file names."""
    return decompress(data, options=_OPTIONS[(n // len(KINDS)) % 2])[0]


class _Timeout(BaseException):
    """Not an Exception: no ``except Exception`` in the decoder may swallow it."""


def _alarm(signum, frame):
    raise _Timeout


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()


def check(
    n: int,
    kind: str,
    data: bytes,
    decode: Callable[[bytes], np.ndarray],
    time_limit: float = TIME_LIMIT_S,
    memory_limit_mb: float = MEMORY_LIMIT_MB,
) -> Outcome:
    """Decode one case and classify what happened (see the module's rule).

    The case runs under an address-space limit of what the process maps now plus
    ``memory_limit_mb`` (Linux), so a header that sizes a huge buffer fails to get
    it, and is caught here, instead of taking the machine's memory. The time limit
    counts CPU time (all threads), so a busy machine does not make a slow case a hang.
    """
    start = time.perf_counter()
    previous = signal.signal(signal.SIGPROF, _alarm)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    room = _mapped_bytes() + int(memory_limit_mb * 2**20)
    if limits[1] != resource.RLIM_INFINITY:
        room = min(room, limits[1])
    resource.setrlimit(resource.RLIMIT_AS, (room, limits[1]))
    signal.setitimer(signal.ITIMER_PROF, time_limit)
    try:
        wave = decode(data)
        result, detail = "decoded", f"{np.asarray(wave).size} samples"
        if not np.isfinite(wave).all():
            result, detail = "nonfinite", "decoded audio holds NaN or infinite samples"
    except MelcodecError as exc:
        message = str(exc)
        result, detail = ("refused", message) if "\n" not in message else ("crash", message)
    except _Timeout:
        result, detail = "hang", f"over {time_limit:g} s of CPU time"
    except MemoryError as exc:
        result, detail = "memory", f"MemoryError: {exc}"
    except Exception as exc:  # the failure this harness exists to find
        message = f"{type(exc).__name__}: {exc}"
        result, detail = ("memory" if "alloc" in message else "crash"), message
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        resource.setrlimit(resource.RLIMIT_AS, limits)
    return Outcome(n, kind, result, detail, time.perf_counter() - start)
