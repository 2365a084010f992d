"""Probability models for the latent bits, and range coding with constriction.

A probability model has a fixed id written into each .mlc header, so later models
slot in without changing the container. Probabilities are integers on a 1/65536
grid, derived from integer tables only: encoder and decoder compute bit-identical
values on any machine (DESIGN.md section 4).

Each tile is stored raw (packed bits) when coding would not make it smaller, so
a tile never exceeds 32,768 bits, the paper's bound.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from . import context
from .errors import FormatError, ModelError

PROB_BITS = 16
PROB_ONE = 1 << PROB_BITS
RAW, RANGE_CODED = 0, 1
# Context models of unreleased development versions, each replaced before any
# release by the next; their numbers are never reused, and their files are refused
# by name.
RETIRED = {2: "context-bernoulli", 3: "context-mix"}


def _constriction():
    # Imported lazily: only tables need it, and it costs ~0.1 s at start-up.
    import constriction

    return constriction


class UniformBits:
    """Id 0: every bit has probability 1/2; the payload is the packed bits."""

    id = 0
    name = "uniform"

    def encode(self, bits: np.ndarray) -> tuple[int, bytes]:
        return RAW, pack(bits)

    def decode(self, coding: int, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        if coding != RAW:
            raise FormatError(f"uniform model cannot read coding {coding}")
        return unpack(payload, shape)


class StaticBernoulli:
    """Id 1: one learned probability per latent position, from the model file.

    ``table`` holds P(bit = 1) as integers k / 65536 with 1 <= k <= 65535.
    """

    id = 1
    name = "static-bernoulli"

    def __init__(self, table: torch.Tensor | np.ndarray):
        table = np.asarray(table, dtype=np.int64)
        if table.min() < 1 or table.max() >= PROB_ONE:
            raise ModelError("probability table has values outside 1..65535")
        self.shape = table.shape
        self.p_one = table.reshape(-1).astype(np.float64) / PROB_ONE

    def encode(self, bits: np.ndarray) -> tuple[int, bytes]:
        if bits.shape != self.shape:
            raise ValueError(f"bits of shape {bits.shape}, table of shape {self.shape}")
        return range_or_raw(bits, bits.reshape(-1), self.p_one)

    def decode(self, coding: int, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        if shape != self.shape:
            raise FormatError(f"latent shape {shape} does not match the table {self.shape}")
        if coding == RAW:
            return unpack(payload, shape)
        with range_decoder(coding, payload) as (decoder, model):
            bits = decoder.decode(model, self.p_one)
        return np.asarray(bits, dtype=np.uint8).reshape(shape)


def encode_tiles(prob, bits: np.ndarray) -> list[tuple[int, bytes]]:
    """Tiles ``[n, C, H, W]`` -> (coding, payload) each, under ``prob``; a model with
    ``encode_many`` (checkerboard-mix) codes them together."""
    if hasattr(prob, "encode_many"):
        return prob.encode_many(bits)
    return [prob.encode(tile) for tile in bits]


def decode_tiles(prob, chunks: list[tuple[int, bytes]], shape: tuple[int, ...]) -> np.ndarray:
    """(coding, payload) of several tiles -> their bits ``[n, *shape]``, under ``prob``."""
    if hasattr(prob, "decode_many"):
        return prob.decode_many(chunks, shape)
    return np.stack([prob.decode(coding, payload, shape) for coding, payload in chunks])


def range_or_raw(bits: np.ndarray, symbols: np.ndarray, p_one: np.ndarray) -> tuple[int, bytes]:
    """``symbols`` (a tile's ``bits`` in coding order) range coded under ``p_one``, or
    the tile packed raw where that would not be smaller."""
    c = _constriction()
    coder = c.stream.queue.RangeEncoder()
    coder.encode(symbols.astype(np.int32), c.stream.model.Bernoulli(perfect=False), p_one)
    payload = coder.get_compressed().astype("<u4").tobytes()
    if len(payload) >= (bits.size + 7) // 8:
        return RAW, pack(bits)
    return RANGE_CODED, payload


@contextlib.contextmanager
def range_decoder(coding: int, payload: bytes):
    """(decoder, Bernoulli model) over a range-coded payload; decoding errors inside
    become :class:`FormatError`."""
    if coding != RANGE_CODED or len(payload) % 4:
        raise FormatError("range-coded payload is malformed")
    c = _constriction()
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    try:
        yield c.stream.queue.RangeDecoder(words), c.stream.model.Bernoulli(perfect=False)
    except (AssertionError, ValueError, RuntimeError) as exc:
        # constriction asserts on a payload no encoder could have made (a crafted
        # chunk with a valid CRC); that is the file's fault, not a bug.
        raise FormatError(f"range-coded payload cannot be decoded ({type(exc).__name__})") from None


def pack(bits: np.ndarray) -> bytes:
    return np.packbits(bits.reshape(-1).astype(np.uint8)).tobytes()


def unpack(payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    if len(payload) != (count + 7) // 8:
        raise FormatError(f"raw payload has {len(payload)} bytes, expected {(count + 7) // 8}")
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[:count].reshape(shape)


def table_from_counts(ones: torch.Tensor, total: int) -> torch.Tensor:
    """Integer P(bit = 1) table from observed counts, with add-one smoothing."""
    k = ((ones.double() + 1) * PROB_ONE / (total + 2)).round()
    return k.clamp(1, PROB_ONE - 1).to(torch.int32)


def refuse_retired(model_id: int) -> None:
    """A file of a retired probability model is refused by name, before any model
    lookup: no model file can decode it any more."""
    if model_id in RETIRED:
        raise FormatError(
            f"probability model id {model_id} ({RETIRED[model_id]}) was a development "
            "format that melcodec no longer decodes; encode the audio again"
        )


def probability_model(model_id: int, tables: dict | None):
    """The probability model with this id, built from a model file's tables."""
    refuse_retired(model_id)
    if model_id == context.CheckerboardMix.id:
        if not tables or context.TABLE_KEY not in tables:
            raise ModelError("this model file has no checkerboard-mix probability table")
        return context.CheckerboardMix(tables[context.TABLE_KEY])
    if model_id == UniformBits.id:
        return UniformBits()
    if model_id == StaticBernoulli.id:
        if not tables or "static_bernoulli" not in tables:
            raise ModelError("this model file has no static-bernoulli probability table")
        return StaticBernoulli(tables["static_bernoulli"])
    raise FormatError(f"unknown probability model id {model_id}")


def available_ids(tables: dict | None) -> list[int]:
    """Every probability-model id a model file's tables support, uniform first."""
    tables = tables or {}
    return [UniformBits.id] + [
        i
        for i, key in (
            (StaticBernoulli.id, "static_bernoulli"),
            (context.CheckerboardMix.id, context.TABLE_KEY),
        )
        if key in tables
    ]


def best_model_id(tables: dict | None) -> int:
    """The id an encoder uses by default: the context model where the file has one."""
    return available_ids(tables)[-1]
