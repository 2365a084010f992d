"""The .mlc container (docs/format.md has the full specification).

All integers little-endian, fixed width; no pickle.

    header   "MLC\\x1a" | major u8 | minor u8 | fixed fields (see _FIXED) |
             [2.x: level spans per tile u8] |
             model name (u8 length + UTF-8) | chunk length u32 x tiles | CRC32 u32
    chunk    CRC32 u32 | min f32 | max f32 | coding u8 | [2.x: level u8 x spans] | payload

Version 2 added the level envelope (``loudness.py``); version 1 files, which
have none, are still read (``level_spans`` 0).

The header's CRC covers every header byte before it, including the table of
chunk lengths, so a reader finds tile N by adding lengths, without decoding the
tiles before it. A chunk's CRC covers its tile index, min, max, coding and payload.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from .errors import FormatError

MAGIC = b"MLC\x1a"
MAJOR, MINOR = 2, 0
# Major versions this reader understands.
READABLE = (1, 2)
# sample_rate, n_fft, hop, n_mels, tile_frames, f_min, f_max, log_eps,
# source_rate, source_samples, num_samples, tiles, probability model id, model sha256
_FIXED = struct.Struct("<IHHHHfffIQQIH32s")
_PREFIX = struct.Struct("<4sBB")
_SPANS = struct.Struct("<B")
_CHUNK = struct.Struct("<IffB")
_U32 = struct.Struct("<I")
MAX_TILES = 1 << 24


@dataclass(frozen=True)
class Header:
    model_name: str
    model_sha256: bytes
    prob_model_id: int
    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    tile_frames: int
    f_min: float
    f_max: float
    log_eps: float
    source_sample_rate: int
    source_num_samples: int
    num_samples: int
    num_tiles: int
    # Level envelope values per tile in each chunk (0: none, as in version 1 files).
    level_spans: int = 0
    version: tuple[int, int] = (MAJOR, MINOR)


@dataclass(frozen=True)
class Chunk:
    lo: float
    hi: float
    coding: int
    payload: bytes
    levels: bytes = b""


def header_size(header: Header) -> int:
    name = header.model_name.encode()
    fixed = _FIXED.size + (_SPANS.size if header.version[0] >= 2 else 0)
    return _PREFIX.size + fixed + 1 + len(name) + 4 * header.num_tiles + 4


def chunk_overhead(header: Header) -> int:
    """Bytes of a chunk besides its payload."""
    return _CHUNK.size + header.level_spans


def write(fh: BinaryIO, header: Header, chunks: list[Chunk]) -> None:
    if len(chunks) != header.num_tiles:
        raise ValueError(f"{len(chunks)} chunks for a header of {header.num_tiles} tiles")
    name = header.model_name.encode()
    if len(name) > 255:
        raise ValueError("model name is longer than 255 bytes")
    if header.version != (MAJOR, MINOR):
        raise ValueError(f"this writer makes version {MAJOR}.{MINOR} only")
    if not 0 <= header.level_spans <= 255:
        raise ValueError(f"{header.level_spans} level spans per tile does not fit a byte")
    for c in chunks:
        if len(c.levels) != header.level_spans:
            raise ValueError(f"a chunk has {len(c.levels)} level bytes, not {header.level_spans}")
    head = _PREFIX.pack(MAGIC, MAJOR, MINOR) + _FIXED.pack(
        header.sample_rate,
        header.n_fft,
        header.hop_length,
        header.n_mels,
        header.tile_frames,
        header.f_min,
        header.f_max,
        header.log_eps,
        header.source_sample_rate,
        header.source_num_samples,
        header.num_samples,
        header.num_tiles,
        header.prob_model_id,
        header.model_sha256,
    )
    head += _SPANS.pack(header.level_spans)
    head += bytes([len(name)]) + name
    head += b"".join(_U32.pack(chunk_overhead(header) + len(c.payload)) for c in chunks)
    fh.write(head + _U32.pack(zlib.crc32(head)))
    for index, c in enumerate(chunks):
        body = _CHUNK.pack(0, c.lo, c.hi, c.coding)[4:] + c.levels + c.payload
        fh.write(_U32.pack(_chunk_crc(index, body)) + body)


def _chunk_crc(index: int, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(_U32.pack(index)))


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise FormatError(f"file truncated in {what}: {n - len(data)} of {n} bytes missing")
    return data


class Reader:
    """Random access to the tiles of an .mlc file object."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        prefix = fh.read(_PREFIX.size)
        if prefix[:4] != MAGIC[: len(prefix)] or not prefix:
            raise FormatError("not a melcodec .mlc file (bad magic bytes)")
        if len(prefix) < _PREFIX.size:
            raise FormatError(f"file truncated in the header: only {len(prefix)} bytes")
        _, major, minor = _PREFIX.unpack(prefix)
        if major not in READABLE:
            readable = " and ".join(f"{v}.x" for v in READABLE)
            raise FormatError(
                f"unsupported .mlc format version {major}.{minor} (this reads {readable})"
            )
        fixed = _read_exact(fh, _FIXED.size, "the header")
        values = _FIXED.unpack(fixed)
        spans = b""
        if major >= 2:
            spans = _read_exact(fh, _SPANS.size, "the header")
            fixed += spans
        name_len = _read_exact(fh, 1, "the header")
        name = _read_exact(fh, name_len[0], "the header")
        tiles = values[11]
        if tiles > MAX_TILES:
            raise FormatError(f"corrupt header: {tiles} tiles")
        table = _read_exact(fh, 4 * tiles, "the header's chunk table")
        crc = _U32.unpack(_read_exact(fh, 4, "the header"))[0]
        if zlib.crc32(prefix + fixed + name_len + name + table) != crc:
            raise FormatError("header is corrupt (CRC32 mismatch)")
        try:
            model_name = name.decode()
        except UnicodeDecodeError:
            raise FormatError("header is corrupt (model name is not UTF-8)") from None
        level_spans = _SPANS.unpack(spans)[0] if spans else 0
        self.header = Header(
            model_name, values[13], values[12], *values[:12], level_spans, (major, minor)
        )
        if min(values[:5]) == 0 or tiles == 0:
            raise FormatError("corrupt header: a zero rate, size or tile count")
        self.lengths = [_U32.unpack_from(table, 4 * i)[0] for i in range(tiles)]
        self.data_start = fh.tell()
        self.offsets = [self.data_start]
        for length in self.lengths:
            if length < chunk_overhead(self.header):
                raise FormatError("corrupt header: a chunk shorter than its own fields")
            self.offsets.append(self.offsets[-1] + length)
        fh.seek(0, 2)
        size = fh.tell()
        if size < self.offsets[-1]:
            missing = self.offsets[-1] - size
            raise FormatError(f"file truncated: {missing} of {self.offsets[-1]} bytes missing")
        if size > self.offsets[-1]:
            raise FormatError(f"{size - self.offsets[-1]} unexpected bytes after the last tile")

    def __len__(self) -> int:
        return self.header.num_tiles

    def chunk(self, index: int) -> Chunk:
        if not 0 <= index < len(self):
            raise IndexError(f"tile {index} out of range 0..{len(self) - 1}")
        self.fh.seek(self.offsets[index])
        raw = _read_exact(self.fh, self.lengths[index], f"tile {index}")
        crc, lo, hi, coding = _CHUNK.unpack_from(raw)
        if _chunk_crc(index, raw[4:]) != crc:
            raise FormatError(f"tile {index} is corrupt (CRC32 mismatch)")
        levels_end = _CHUNK.size + self.header.level_spans
        return Chunk(lo, hi, coding, raw[levels_end:], raw[_CHUNK.size : levels_end])
