"""The .mlc container: round trip, random access, and every way a file can be damaged.

Damage must always surface as a FormatError with a clear message, never as wrong
audio or a traceback from deep inside numpy, torch or constriction.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
import struct
import zlib

import numpy as np
import pytest
from conftest import OTHER_NAME, TINY_NAME, make_header, synth

from melcodec import bitstream, limits
from melcodec.codec import Codec, DecodeOptions
from melcodec.errors import FormatError, ModelError

FAST = DecodeOptions(gl_iters=0)


def _chunks() -> list[bitstream.Chunk]:
    rng = np.random.default_rng(5)

    def levels() -> bytes:
        return rng.integers(0, 256, 16, dtype=np.uint8).tobytes()

    def payload(n: int) -> bytes:
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    return [
        bitstream.Chunk(-6.5, 3.25, 0, payload(4096), levels()),
        bitstream.Chunk(-6.90625, -6.90625, 1, payload(4), levels()),  # one word: the least
        bitstream.Chunk(0.5, 1.5, 1, payload(776), levels()),
    ]


def _write(header: bitstream.Header, chunks: list[bitstream.Chunk]) -> bytes:
    out = io.BytesIO()
    bitstream.write(out, header, chunks)
    return out.getvalue()


def _reader(data: bytes) -> bitstream.Reader:
    return bitstream.Reader(io.BytesIO(data))


@pytest.fixture(scope="module")
def encoded_3_tiles(tiny_loaded) -> bytes:
    """A real 3-tile file from the tiny model with its range-coded probability model."""
    wave = synth(16000 * 9, 16000, seed=3)[:, 0]
    return Codec(tiny_loaded).encode(wave, 16000)


# ---------------------------------------------------------------------------
# Round trip and layout
# ---------------------------------------------------------------------------


def test_round_trip_header_and_chunks():
    header, chunks = make_header(3), _chunks()
    reader = _reader(_write(header, chunks))
    got = reader.header
    # Floats are stored as f32: compare with their f32 values, everything else exactly.
    assert got.log_eps == pytest.approx(float(np.float32(0.001)), abs=0)
    assert got == make_header(3, log_eps=float(np.float32(0.001)))
    assert len(reader) == 3
    assert [reader.chunk(i) for i in range(3)] == chunks


def test_layout_matches_docs_format():
    header, chunks = make_header(3, name="abc"), _chunks()
    data = _write(header, chunks)
    # docs/format.md: header is 94 + L + 4N bytes; magic, versions and fixed offsets.
    assert bitstream.header_size(header) == 94 + 3 + 4 * 3
    assert data[:4] == b"MLC\x1a" and data[4] == 2 and data[5] == 0
    assert struct.unpack_from("<I", data, 50)[0] == 3
    assert struct.unpack_from("<Q", data, 34)[0] == 3 * 66560 * 441 // 160
    assert data[88] == 16 and data[89] == 3 and data[90:93] == b"abc"
    assert bitstream.chunk_overhead(header) == 13 + 16
    size = bitstream.header_size(header) + sum(29 + len(c.payload) for c in chunks)
    assert len(data) == size
    # A chunk: CRC, min, max, coding, then the 16 level bytes, then the payload.
    first = bitstream.header_size(header)
    assert data[first + 13 : first + 29] == chunks[0].levels
    assert data[first + 29 : first + 29 + 4096] == chunks[0].payload


def test_reader_fetches_tile_directly():
    data = _write(make_header(3), _chunks())
    reader = _reader(data)
    # Tile 2 first, before any other tile was read.
    assert reader.chunk(2) == _chunks()[2]
    # And it still reads when the tiles before it are destroyed: nothing before it is used.
    broken = bytearray(data)
    for i in (0, 1):
        start = reader.offsets[i]
        broken[start : start + 4] = bytes(4 ^ b for b in broken[start : start + 4])
    reader = _reader(bytes(broken))
    assert reader.chunk(2) == _chunks()[2]
    with pytest.raises(FormatError, match="CRC"):
        reader.chunk(0)
    with pytest.raises(IndexError, match=r"^tile 3 out of range 0\.\.2$"):
        reader.chunk(3)


def test_writer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="3 chunks for a header of 2 tiles"):
        _write(make_header(2), _chunks())
    old = dataclasses.replace(make_header(3), version=(1, 0))
    with pytest.raises(ValueError, match=f"makes version {bitstream.MAJOR}.{bitstream.MINOR} only"):
        _write(old, _chunks())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_name": "x" * 256}, "model name of 256 bytes"),
        ({"model_name": ""}, "model name of 0 bytes"),
        ({"source_num_samples": 5}, "source length"),
        ({"num_tiles": 4}, "4 tiles for"),
        ({"source_sample_rate": 4000}, "source sample rate 4000"),
        ({"f_max": float("nan")}, "f_max is nan"),
        ({"level_spans": 3}, "3 level spans"),
        ({"prob_model_id": 1 << 16}, "does not fit a u16"),
    ],
)
def test_writer_refuses_what_the_reader_refuses(changes, message):
    tiles = changes.get("num_tiles", 3)
    header = dataclasses.replace(make_header(3), **changes)
    chunks = _chunks() + _chunks()[:1] if tiles == 4 else _chunks()
    out = io.BytesIO()
    with pytest.raises(FormatError, match=message):
        bitstream.write(out, header, chunks)
    assert out.getvalue() == b""  # refused before a byte was written
    if "x" * 256 != header.model_name and header.prob_model_id < 1 << 16:  # can be packed
        with pytest.raises(FormatError, match=message):
            _reader(bitstream.pack_unchecked(header, chunks))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # At the edges: accepted.
        ({"model_name": "x"}, None),
        ({"model_name": "x" * 255}, None),
        ({"f_max": 8000.0, "f_min": 0.0}, None),
        # Past them: refused, each with its own reason.
        ({"version": (9, 4)}, "format version 9.4"),
        ({"model_sha256": bytes(31)}, "model SHA-256 is not 32 bytes"),
        ({"sample_rate": 1 << 32}, "sample_rate 4294967296 does not fit a u32"),
        ({"num_samples": 1 << 64}, "num_samples 18446744073709551616 does not fit a u64"),
        ({"level_spans": 256}, "level_spans 256 does not fit a u8"),
        ({"sample_rate": 0}, "a zero rate or size"),
        ({"n_fft": 0}, "a zero rate or size"),
        ({"hop_length": 0}, "a zero rate or size"),
        ({"n_mels": 0}, "a zero rate or size"),
        ({"tile_frames": 0}, "a zero rate or size"),
        ({"log_eps": 0.0}, "mel range 0.0-8000.0 Hz or log epsilon 0.0"),
        ({"log_eps": -1.0}, "mel range 0.0-8000.0 Hz or log epsilon -1.0"),
        ({"f_min": 8000.0}, "mel range 8000.0-8000.0 Hz or log epsilon 0.001"),
        ({"f_max": 8000.5}, "mel range 0.0-8000.5 Hz or log epsilon 0.001"),
        ({"num_samples": 0}, "no samples"),
        ({"source_num_samples": 0}, "no samples"),
    ],
)
def test_header_fields_at_and_past_their_limits(changes, message):
    header = dataclasses.replace(make_header(3), **changes)
    if message is None:
        bitstream.validate(header)
    else:
        with pytest.raises(FormatError, match=f"^invalid header: {re.escape(message)}$"):
            bitstream.validate(header)


def test_duration_limit_is_inclusive():
    header = make_header(3)
    seconds = header.num_samples / header.sample_rate
    bitstream.validate(header, max_seconds=seconds)
    # 540.05 s: 0.150014 h, shown to a tenth.
    n = 8_640_800
    tiles = limits.num_tiles(n, 1024, 260, 256)
    long = make_header(tiles, num_samples=n, source_num_samples=n, source_sample_rate=16000)
    message = (
        "invalid header: 0.2 h of audio, over the limit of 0.001 h (raise it with --max-hours)"
    )
    with pytest.raises(FormatError, match=f"^{re.escape(message)}$"):
        bitstream.validate(long, max_seconds=3.6)
    # The most tiles a file may have is allowed, when the duration limit allows it.
    bitstream.validate(make_header(limits.MAX_TILES), max_seconds=math.inf)


def test_header_table_in_docs_follows_the_field_table():
    from pathlib import Path

    docs = (Path(__file__).parents[1] / "docs" / "format.md").read_text()
    assert bitstream.markdown_table() in docs
    assert bitstream.markdown_table().startswith(
        "| offset | size | type | field |\n|---|---|---|---|\n| 0 | 4 | bytes | magic"
    )
    # The struct follows the same table: each field at the offset the table gives.
    data = _write(make_header(3), _chunks())
    rows = [line.split(" | ") for line in bitstream.markdown_table().splitlines()[2:]]
    offsets = {row[-1].rstrip(" |"): row[0].lstrip("| ") for row in rows}
    assert struct.unpack_from("<I", data, int(offsets["number of tiles N"]))[0] == 3
    assert data[int(offsets["model name length L (bytes, 1 to 255)"])] == len(
        "tiny-ünïcode".encode()
    )


def test_future_minor_version_is_read():
    header = make_header(3)
    data = bytearray(_write(header, _chunks()))
    data[5] = 7
    crc_at = bitstream.header_size(header) - 4
    data[crc_at : crc_at + 4] = struct.pack("<I", zlib.crc32(bytes(data[:crc_at])))
    reader = _reader(bytes(data))
    assert reader.chunk(2) == _chunks()[2]


def test_level_spans_that_do_not_divide_a_tile_are_refused(codec, encoded_3_tiles):
    header = _reader(encoded_3_tiles).header
    crc_at = bitstream.header_size(header) - 4
    for spans in (3, 255):
        data = bytearray(encoded_3_tiles)
        data[88] = spans  # a valid CRC over a wrong value: a buggy writer's file
        data[crc_at : crc_at + 4] = struct.pack("<I", zlib.crc32(bytes(data[:crc_at])))
        with pytest.raises(FormatError, match=f"{spans} level spans"):
            codec.decode(bytes(data), FAST)


# ---------------------------------------------------------------------------
# Damage: flipped bytes, swapped chunks, versions, trailing bytes, truncation
# ---------------------------------------------------------------------------


def test_every_flipped_byte_of_a_chunk_is_caught(codec, encoded_3_tiles):
    data = encoded_3_tiles
    reader = _reader(data)
    start, stop = reader.offsets[1], reader.offsets[2]
    assert stop - start > 100
    for offset in range(start, stop):
        broken = bytearray(data)
        broken[offset] ^= 0xFF
        # Through the public decode path: the CRC is checked before any bit is decoded.
        with pytest.raises(FormatError, match="tile 1 .*CRC") as err:
            codec.decode(bytes(broken), FAST)
        assert "CRC" in str(err.value), offset


def test_single_bit_flips_are_caught(codec, encoded_3_tiles):
    data = encoded_3_tiles
    reader = _reader(data)
    start, stop = reader.offsets[2], reader.offsets[3]
    for offset in (start, start + 3, start + 4, start + 12, start + 13, stop - 1):
        for bit in range(8):
            broken = bytearray(data)
            broken[offset] ^= 1 << bit
            with pytest.raises(FormatError, match="CRC"):
                codec.decode(bytes(broken), FAST)


def test_every_flipped_header_byte_is_caught(codec, encoded_3_tiles):
    data = encoded_3_tiles
    size = bitstream.header_size(_reader(data).header)
    clear = r"CRC|corrupt|truncated|version|not a melcodec|unexpected bytes|invalid header"
    for offset in range(size):
        broken = bytearray(data)
        broken[offset] ^= 0xFF
        with pytest.raises(FormatError, match=clear):
            codec.decode(bytes(broken), FAST)


def test_swapped_chunks_are_caught(codec):
    # Two tiles of equal length (raw coding): swapping them keeps every length valid.
    wave = synth(16000 * 6, 16000, seed=9)[:, 0]
    data = Codec(codec.model, prob_model_id=0).encode(wave, 16000)
    reader = _reader(data)
    a, b, c = reader.offsets[:3]
    assert b - a == c - b
    swapped = data[:a] + data[b:c] + data[a:b] + data[c:]
    with pytest.raises(FormatError, match="CRC"):
        codec.decode(swapped, FAST)


def test_unknown_major_version_rejected(codec, encoded_3_tiles):
    for major in (0, 3, 255):
        broken = bytearray(encoded_3_tiles)
        broken[4] = major
        with pytest.raises(FormatError, match="version"):
            codec.decode(bytes(broken), FAST)


def test_trailing_garbage_rejected(codec, encoded_3_tiles):
    for extra in (b"\0", b"garbage", encoded_3_tiles[-100:]):
        with pytest.raises(FormatError, match="unexpected bytes"):
            codec.decode(encoded_3_tiles + extra, FAST)


def test_truncated_at_each_sixteenth(codec, encoded_3_tiles):
    data = encoded_3_tiles
    for k in range(16):
        cut = data[: len(data) * k // 16]
        with pytest.raises(FormatError, match="truncated|not a melcodec") as err:
            codec.decode(cut, FAST)
        assert len(str(err.value)) < 200


def test_truncated_by_one_byte(codec, encoded_3_tiles):
    with pytest.raises(FormatError, match="truncated"):
        codec.decode(encoded_3_tiles[:-1], FAST)


def test_a_file_cut_in_its_chunk_table_is_refused_before_the_table_is_read(encoded_3_tiles):
    # The table ends 4 * tiles + 4 bytes (entries, then the header's CRC) after the name.
    header = _reader(encoded_3_tiles).header
    table_end = len(encoded_3_tiles) - sum(_reader(encoded_3_tiles).lengths)
    name_end = bitstream._PREFIX.size + bitstream._struct(2).size + 1 + len(header.model_name)
    assert table_end == name_end + 4 * 3 + 4
    with pytest.raises(FormatError, match=r"^file truncated in the header's chunk table$"):
        _reader(encoded_3_tiles[: table_end - 1])
    # A whole header without its chunks gets past that check and is refused for the chunks.
    with pytest.raises(FormatError, match=r"^file truncated: \d+ of \d+ bytes missing$"):
        _reader(encoded_3_tiles[:table_end])


def test_reader_messages_say_what_is_wrong(encoded_3_tiles):
    data = encoded_3_tiles
    reader = _reader(data)
    name = reader.header.model_name.encode()
    total = reader.offsets[-1]
    assert total == len(data)

    def exactly(message: str, crafted: bytes) -> None:
        with pytest.raises(FormatError, match=f"^{re.escape(message)}$"):
            _reader(crafted)

    exactly(f"file truncated: 10 of {total} bytes missing", data[:-10])
    exactly("7 unexpected bytes after the last tile", data + bytes(7))
    at = data.index(name)
    flipped = bytearray(data)
    flipped[at] ^= 0x20
    exactly("header is corrupt (CRC32 mismatch)", bytes(flipped))
    # The same header with a name that is not UTF-8 and a CRC made for it.
    table_end = total - sum(reader.lengths)
    head = data[:at] + b"\xff" * len(name) + data[at + len(name) : table_end - 4]
    exactly(
        "header is corrupt (model name is not UTF-8)",
        head + struct.pack("<I", zlib.crc32(head)) + data[table_end:],
    )
    # A chunk table entry shorter than a chunk's own fields.
    entry = table_end - 4 - 4 * 3
    head = data[:entry] + struct.pack("<I", 3) + data[entry + 4 : table_end - 4]
    exactly(
        "invalid header: a chunk shorter than its own fields",
        head + struct.pack("<I", zlib.crc32(head)) + data[table_end:],
    )


@pytest.mark.parametrize(
    ("tiles", "message"),
    [
        (0, "invalid header: 0 tiles"),
        (1 << 24, "file truncated in the header's chunk table"),  # the limit itself is allowed
        ((1 << 24) + 1, "invalid header: 16777217 tiles"),
    ],
)
def test_tile_count_limit(tiles, message):
    assert limits.MAX_TILES == 1 << 24
    header = make_header(tiles)
    with pytest.raises(FormatError, match=f"^{message}$"):
        _reader(bitstream.pack_unchecked(header, []))


def test_not_an_mlc_file(codec):
    for data in (b"RIFF\x24\x00\x00\x00WAVEfmt ", b"hello world\n", b"M"):
        with pytest.raises(FormatError, match="not a melcodec|truncated"):
            codec.decode(data, FAST)


def test_header_tile_count_must_match_length(codec, encoded_3_tiles):
    # A well-formed container whose header says 3 tiles but 1 sample: refused, not decoded.
    reader = _reader(encoded_3_tiles)
    header = reader.header
    chunks = [reader.chunk(i) for i in range(3)]
    lying = dataclasses.replace(header, num_samples=1, source_num_samples=1)
    with pytest.raises(FormatError, match="3 tiles for 1 samples"):
        codec.decode(bitstream.pack_unchecked(lying, chunks), FAST)


def test_header_source_fields_are_checked(codec, encoded_3_tiles):
    # Well-formed containers (valid CRCs) whose source rate or length cannot come from
    # an encoder: a FormatError, not a ValueError from torchaudio, and never an attempt
    # to pad the output to whatever length the header claims.
    reader = _reader(encoded_3_tiles)
    header = reader.header
    chunks = [reader.chunk(i) for i in range(3)]
    source = DecodeOptions(gl_iters=0, sample_rate="source")
    for changes in (
        {"source_sample_rate": 0},
        {"source_sample_rate": 7},
        {"source_num_samples": header.num_samples * 3},  # 16 kHz source: must be equal
        {"source_sample_rate": 44100, "source_num_samples": 5},
    ):
        bad = bitstream.pack_unchecked(dataclasses.replace(header, **changes), chunks)
        with pytest.raises(FormatError, match="invalid header: source"):
            codec.decode(bad, source)


# ---------------------------------------------------------------------------
# Wrong model
# ---------------------------------------------------------------------------


def test_file_from_another_model_refused_by_name(other_loaded, encoded_3_tiles):
    with pytest.raises(ModelError) as err:
        Codec(other_loaded).decode(encoded_3_tiles, FAST)
    assert TINY_NAME in str(err.value)
    assert OTHER_NAME in str(err.value)


def test_same_name_other_weights_refused_by_hash(tmp_path, other_loaded, encoded_3_tiles):
    from melcodec import zoo

    impostor = tmp_path / f"{TINY_NAME}.pt"
    zoo.save_model(impostor, other_loaded.net, card={"name": TINY_NAME}, recipe={})
    loaded = zoo.load_model(impostor)
    assert loaded.name == TINY_NAME
    with pytest.raises(ModelError, match=TINY_NAME):
        Codec(loaded).decode(encoded_3_tiles, FAST)


_OTHER_ANALYSIS = "^file uses mel parameters this version cannot decode$"
# Each front-end field doubled (f_min: set to 1 Hz), and who refuses it: the
# container's own checks, where the fields no longer agree, or the codec's.
_FRONT_END_REFUSALS = {
    "sample_rate": "source length and mel-rate length disagree",
    "n_fft": _OTHER_ANALYSIS,
    "hop_length": "invalid header: 3 tiles",
    "n_mels": _OTHER_ANALYSIS,
    "tile_frames": "invalid header: 3 tiles",
    "f_min": _OTHER_ANALYSIS,
    "f_max": "invalid header: mel range",
    "log_eps": _OTHER_ANALYSIS,
}


def test_the_refusal_table_covers_the_front_end():
    assert list(_FRONT_END_REFUSALS) == [f.name for f in bitstream.FRONT_END]


@pytest.mark.parametrize(("field", "refusal"), _FRONT_END_REFUSALS.items())
def test_other_mel_parameters_are_refused(codec, encoded_3_tiles, field, refusal):
    # A file of another analysis or tile size, read with ours, is wrong audio.
    reader = _reader(encoded_3_tiles)
    header = reader.header
    value = getattr(header, field)
    changed = dataclasses.replace(header, **{field: type(value)(value * 2 or 1)})
    chunks = [reader.chunk(i) for i in range(len(reader))]
    with pytest.raises(FormatError, match=refusal):
        codec.decode(bitstream.pack_unchecked(changed, chunks))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lo": float("nan")}, "log-mel range nan"),
        ({"hi": float("inf")}, "log-mel range"),
        ({"hi": 3e38}, "log-mel range"),
        ({"lo": 2.0, "hi": 1.0}, "log-mel range 2.0..1.0"),
        ({"lo": -30.0}, "log-mel range -30.0"),
        ({"coding": 7}, "unknown coding 7"),
        ({"payload": b"abc"}, "3-byte range-coded payload"),
        ({"payload": b""}, "0-byte range-coded payload"),
    ],
)
def test_crafted_chunk_fields_are_refused(changes, message):
    header, chunks = make_header(3), _chunks()
    chunks[1] = dataclasses.replace(chunks[1], **changes)
    with pytest.raises(FormatError, match=f"tile 1 is invalid: {message}"):
        _write(header, chunks)  # the writer refuses it too
    reader = _reader(bitstream.pack_unchecked(header, chunks))
    assert reader.chunk(0) == _chunks()[0]
    with pytest.raises(FormatError, match=f"tile 1 is invalid: {message}"):
        reader.chunk(1)


def test_chunk_field_edges():
    header = make_header(3)
    floor = math.log(header.log_eps) - 1e-3
    edges = {"lo": floor, "hi": limits.MAX_LOG_MEL}
    bitstream.validate_chunk(1, dataclasses.replace(_chunks()[1], **edges), header)
    below = dataclasses.replace(_chunks()[1], lo=floor - 0.01)
    with pytest.raises(FormatError, match=r"^tile 1 is invalid: log-mel range -6\.9"):
        bitstream.validate_chunk(1, below, header)
    short = dataclasses.replace(_chunks()[2], levels=b"\0" * 15)
    with pytest.raises(FormatError, match="^tile 2 has 15 level bytes, not 16$"):
        bitstream.validate_chunk(2, short, header)


def test_a_crafted_range_payload_is_a_format_error_not_an_assertion(
    tmp_path, codec, encoded_3_tiles
):
    # Valid CRCs around words that no encoder makes: constriction asserts; melcodec
    # reports the file (and a folder decode goes on to the next one).
    header = _reader(encoded_3_tiles).header
    reader = _reader(encoded_3_tiles)
    chunks = [reader.chunk(i) for i in range(3)]
    payload = np.full(8, 0xFFFFFFFF, "<u4").tobytes()
    chunks[1] = dataclasses.replace(chunks[1], coding=1, payload=payload)
    crafted = bitstream.pack_unchecked(header, chunks)
    with pytest.raises(FormatError, match=r"range-coded payload cannot be decoded \(\w+Error\)"):
        codec.decode(crafted, FAST)
