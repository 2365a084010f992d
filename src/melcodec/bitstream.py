"""The .mlc container (docs/format.md has the full specification).

All integers little-endian, fixed width; no pickle.

    header   "MLC\\x1a" | major u8 | minor u8 | FIELDS (in order, those of the version) |
             model name (u8 length + UTF-8) | chunk length u32 x tiles | CRC32 u32
    chunk    CRC32 u32 | min f32 | max f32 | coding u8 | [2.x: level u8 x spans] | payload

``FIELDS`` is the one description of the header: the struct, the :class:`Header`
type and docs/format.md's table (:func:`markdown_table`) all follow from it, and
:func:`validate` is the one set of checks, run by the writer before it writes and
by the reader before anything is allocated from a header's numbers.

Version 2 added the level envelope (``loudness.py``); version 1 files, which
have none, are still read (``level_spans`` 0).

The header's CRC covers every header byte before it, including the table of
chunk lengths, so a reader finds tile N by adding lengths, without decoding the
tiles before it. A chunk's CRC covers its tile index, min, max, coding and payload.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from . import limits
from .errors import FormatError

MAGIC = b"MLC\x1a"
MAJOR, MINOR = 2, 0
# Major versions this reader understands.
READABLE = (1, 2)
# Chunk codings: packed bits, or range coded under the header's probability model.
CODINGS = (0, 1)
_TYPES = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64", "f": "f32", "32s": "bytes"}


@dataclass(frozen=True)
class Field:
    name: str
    code: str  # struct format code
    doc: str
    since: int = 1  # first major version that has it


# The front end the stream was made with: a decoder refuses any but its own
# (Codec.open compares front_end() of the file's header and its own).
FRONT_END: tuple[Field, ...] = (
    Field("sample_rate", "I", "mel sample rate in Hz (16000)"),
    Field("n_fft", "H", "n_fft (1024; the Hann window has the same length)"),
    Field("hop_length", "H", "hop length (260)"),
    Field("n_mels", "H", "mel bands (256)"),
    Field("tile_frames", "H", "frames per tile (256)"),
    Field("f_min", "f", "f_min in Hz (0)"),
    Field("f_max", "f", "f_max in Hz (8000)"),
    Field("log_eps", "f", "log epsilon (0.001): the spectrogram is `log(mel + eps)`"),
)
# The input, so that decode can give back its rate and length.
SOURCE: tuple[Field, ...] = (
    Field("source_sample_rate", "I", "source sample rate in Hz (the input file's rate)"),
    Field("source_num_samples", "Q", "source length in samples, at the source rate"),
    Field("num_samples", "Q", "length in samples at the mel rate (what a 16 kHz decode gives)"),
)
# The coded stream: its tiles, their probability model, the model that made them.
STREAM: tuple[Field, ...] = (
    Field("num_tiles", "I", "number of tiles N"),
    Field("prob_model_id", "H", "probability model id (table below)"),
    Field("model_sha256", "32s", "SHA-256 of the model file that made the stream"),
    Field(
        "level_spans",
        "B",
        "level spans per tile S (4; 0 = no level envelope). S divides the frames per tile.",
        since=2,
    ),
)
FIELDS = FRONT_END + SOURCE + STREAM
_PY_TYPES = {"f": float, "32s": bytes}

# The Header type follows FIELDS: the model name first, then the fields in file
# order, then the version it was read as (fields a version lacks default to 0).
Header = dataclasses.make_dataclass(
    "Header",
    [("model_name", str)]
    + [(f.name, _PY_TYPES.get(f.code, int)) for f in FIELDS if f.since == 1]
    + [(f.name, int, dataclasses.field(default=0)) for f in FIELDS if f.since > 1]
    + [("version", tuple, dataclasses.field(default=(MAJOR, MINOR)))],
    frozen=True,
)
Header.__module__ = __name__
Header.__doc__ = "An .mlc header: the fields of ``FIELDS`` plus the model name and version."

_PREFIX = struct.Struct("<4sBB")
_CHUNK = struct.Struct("<IffB")
_U32 = struct.Struct("<I")


def _fields(major: int) -> tuple[Field, ...]:
    return tuple(f for f in FIELDS if f.since <= major)


def _struct(major: int) -> struct.Struct:
    return struct.Struct("<" + "".join(f.code for f in _fields(major)))


@dataclass(frozen=True)
class Chunk:
    lo: float
    hi: float
    coding: int
    payload: bytes
    levels: bytes = b""


def front_end(header: Header) -> tuple:
    """A header's front-end values, floats as the f32 they are stored as: two headers
    with equal tuples were made with the same mel analysis and tile size."""
    layout = "<" + "".join(f.code for f in FRONT_END)
    return struct.unpack(layout, struct.pack(layout, *(getattr(header, f.name) for f in FRONT_END)))


def header_size(header: Header) -> int:
    name = header.model_name.encode()
    return _PREFIX.size + _struct(header.version[0]).size + 1 + len(name) + 4 * header.num_tiles + 4


def chunk_overhead(header: Header) -> int:
    """Bytes of a chunk besides its payload."""
    return _CHUNK.size + header.level_spans


def validate(header: Header, max_seconds: float = limits.MAX_SECONDS) -> None:
    """Raise :class:`FormatError` unless every field is in range and the fields agree.

    The writer calls it before writing, so an encoder cannot make a file its
    decoder refuses; the reader calls it before it trusts any count or length.
    """

    def bad(reason: str) -> FormatError:
        return FormatError(f"invalid header: {reason}")

    h = header
    if h.version[0] not in READABLE:
        raise bad(f"format version {h.version[0]}.{h.version[1]}")
    name = h.model_name.encode()
    if not 1 <= len(name) <= 255:
        raise bad(f"model name of {len(name)} bytes (1 to 255 allowed)")
    if len(h.model_sha256) != 32:
        raise bad("model SHA-256 is not 32 bytes")
    for f in _fields(h.version[0]):
        value = getattr(h, f.name)
        if f.code in ("H", "I", "Q", "B"):
            top = (1 << (8 * struct.calcsize(f.code))) - 1
            if isinstance(value, float) or not 0 <= operator.index(value) <= top:
                raise bad(f"{f.name} {value!r} does not fit a {_TYPES[f.code]}")
        elif f.code == "f" and not math.isfinite(value):
            raise bad(f"{f.name} is {value}")
    if any(getattr(h, f.name) == 0 for f in FRONT_END if f.code != "f"):
        raise bad("a zero rate or size")
    if not (h.log_eps > 0 and 0 <= h.f_min < h.f_max <= h.sample_rate / 2):
        raise bad(f"mel range {h.f_min}-{h.f_max} Hz or log epsilon {h.log_eps}")
    if not limits.MIN_RATE <= h.source_sample_rate <= limits.MAX_RATE:
        raise bad(
            f"source sample rate {h.source_sample_rate} Hz "
            f"(outside {limits.MIN_RATE}-{limits.MAX_RATE} Hz)"
        )
    if h.num_samples == 0 or h.source_num_samples == 0:
        raise bad("no samples")
    seconds = h.num_samples / h.sample_rate
    if seconds > max_seconds:
        raise bad(
            f"{seconds / 3600:.1f} h of audio, over the limit of {max_seconds / 3600:g} h "
            "(raise it with --max-hours)"
        )
    length = limits.resampled_length(h.source_num_samples, h.source_sample_rate, h.sample_rate)
    if length != h.num_samples:
        raise bad("source length and mel-rate length disagree")
    tiles = limits.num_tiles(h.num_samples, h.n_fft, h.hop_length, h.tile_frames)
    if not 1 <= h.num_tiles <= limits.MAX_TILES or h.num_tiles != tiles:
        raise bad(f"{h.num_tiles} tiles for {h.num_samples} samples")
    if h.level_spans and (h.version[0] < 2 or h.tile_frames % h.level_spans):
        raise bad(f"{h.level_spans} level spans per tile of {h.tile_frames} frames")


def validate_chunk(index: int, chunk: Chunk, header: Header) -> None:
    """Raise :class:`FormatError` unless a chunk's fields are usable as they stand."""
    lo, hi = chunk.lo, chunk.hi
    floor = math.log(header.log_eps) - 1e-3
    if not (math.isfinite(lo) and math.isfinite(hi) and floor <= lo <= hi <= limits.MAX_LOG_MEL):
        raise FormatError(f"tile {index} is invalid: log-mel range {lo}..{hi}")
    if chunk.coding not in CODINGS:
        raise FormatError(f"tile {index} is invalid: unknown coding {chunk.coding}")
    if chunk.coding == 1 and (not chunk.payload or len(chunk.payload) % 4):
        raise FormatError(f"tile {index} is invalid: {len(chunk.payload)}-byte range-coded payload")
    if len(chunk.levels) != header.level_spans:
        raise FormatError(
            f"tile {index} has {len(chunk.levels)} level bytes, not {header.level_spans}"
        )


def write(
    fh: BinaryIO, header: Header, chunks: list[Chunk], max_seconds: float = limits.MAX_SECONDS
) -> None:
    """Write a file, after the checks its reader makes (:func:`validate`)."""
    if header.version != (MAJOR, MINOR):
        raise ValueError(f"this writer makes version {MAJOR}.{MINOR} only")
    if len(chunks) != header.num_tiles:
        raise ValueError(f"{len(chunks)} chunks for a header of {header.num_tiles} tiles")
    validate(header, max_seconds)
    for index, c in enumerate(chunks):
        validate_chunk(index, c, header)
    fh.write(pack_unchecked(header, chunks))


def pack_unchecked(header: Header, chunks: list[Chunk]) -> bytes:
    """The bytes of a file, with valid CRCs, whatever the fields say.

    Only for tests and fuzzing, which craft the files a buggy writer or an
    attacker would make; :func:`write` is the writer.
    """
    name = header.model_name.encode()
    values = [getattr(header, f.name) for f in _fields(MAJOR)]
    head = _PREFIX.pack(MAGIC, MAJOR, MINOR) + _struct(MAJOR).pack(*values)
    head += bytes([len(name)]) + name
    head += b"".join(_U32.pack(chunk_overhead(header) + len(c.payload)) for c in chunks)
    out = [head, _U32.pack(zlib.crc32(head))]
    for index, c in enumerate(chunks):
        body = _CHUNK.pack(0, c.lo, c.hi, c.coding)[4:] + c.levels + c.payload
        out += [_U32.pack(_chunk_crc(index, body)), body]
    return b"".join(out)


def _chunk_crc(index: int, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(_U32.pack(index)))


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise FormatError(f"file truncated in {what}: {n - len(data)} of {n} bytes missing")
    return data


class Reader:
    """Random access to the tiles of an .mlc file object.

    ``max_seconds`` bounds the audio a file may claim (``limits.MAX_SECONDS``).
    """

    def __init__(self, fh: BinaryIO, max_seconds: float = limits.MAX_SECONDS):
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
        layout = _struct(major)
        fixed = _read_exact(fh, layout.size, "the header")
        values = dict(zip([f.name for f in _fields(major)], layout.unpack(fixed), strict=True))
        name_len = _read_exact(fh, 1, "the header")
        name = _read_exact(fh, name_len[0], "the header")
        tiles = values["num_tiles"]
        if not 1 <= tiles <= limits.MAX_TILES:
            raise FormatError(f"invalid header: {tiles} tiles")
        fh.seek(0, 2)
        size = fh.tell()
        start = len(prefix) + len(fixed) + 1 + len(name)
        # Refused before the table is read: a header's count never sizes a read alone.
        if size < start + 4 * tiles + 4:
            raise FormatError("file truncated in the header's chunk table")
        fh.seek(start)
        table = _read_exact(fh, 4 * tiles, "the header's chunk table")
        crc = _U32.unpack(_read_exact(fh, 4, "the header"))[0]
        if zlib.crc32(prefix + fixed + name_len + name + table) != crc:
            raise FormatError("header is corrupt (CRC32 mismatch)")
        try:
            model_name = name.decode()
        except UnicodeDecodeError:
            raise FormatError("header is corrupt (model name is not UTF-8)") from None
        self.header = Header(model_name=model_name, version=(major, minor), **values)
        validate(self.header, max_seconds)
        self.lengths = list(struct.unpack(f"<{tiles}I", table))
        self.data_start = fh.tell()
        self.offsets = [self.data_start]
        for length in self.lengths:
            if length < chunk_overhead(self.header):
                raise FormatError("invalid header: a chunk shorter than its own fields")
            self.offsets.append(self.offsets[-1] + length)
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
        chunk = Chunk(lo, hi, coding, raw[levels_end:], raw[_CHUNK.size : levels_end])
        validate_chunk(index, chunk, self.header)
        return chunk


def markdown_table(major: int = MAJOR) -> str:
    """docs/format.md's header table, from ``FIELDS`` (a test keeps the two equal)."""
    rows = [
        ("0", "4", "bytes", 'magic `4D 4C 43 1A` (`"MLC"` and Ctrl-Z, so `type` stops there)'),
        (
            "4",
            "1",
            "u8",
            f"major version: {major}. A reader rejects a major version it does not "
            'know (this one reads 1 and 2, see "Version 1" below).',
        ),
        ("5", "1", "u8", "minor version: 0. Minor versions only add meaning to reserved values."),
    ]
    offset = _PREFIX.size
    for f in _fields(major):
        size = struct.calcsize("<" + f.code)
        rows.append((str(offset), str(size), _TYPES[f.code], f.doc))
        offset += size
    rows += [
        (str(offset), "1", "u8", "model name length L (bytes, 1 to 255)"),
        (f"{offset + 1}", "L", "UTF-8", "model name"),
        (
            f"{offset + 1}+L",
            "4N",
            "u32 x N",
            "byte length of each chunk, its `13 + S` bytes of fields included",
        ),
        (f"{offset + 1}+L+4N", "4", "u32", "CRC32 (zlib) of every header byte before this field"),
    ]
    lines = ["| offset | size | type | field |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
