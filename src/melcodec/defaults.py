"""Defaults that the command line shows and the library uses, without importing torch."""

from __future__ import annotations

# What encode uses without --model: chosen by end-to-end quality on music-dev
# (models/README.md). "default" is melcodec 0.1's default, kept for its files.
DEFAULT_MODEL = "msssim-music"
DEFAULT_GL_ITERS = 16
DEFAULT_GL_MOMENTUM = 0.99
