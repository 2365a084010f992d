"""The ``melcodec`` command line: a thin click layer over the Python API."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from . import limits
from .defaults import DEFAULT_GL_ITERS, DEFAULT_GL_MOMENTUM, DEFAULT_MODEL
from .errors import MelcodecError, UsageError
from .info import describe
from .progress import Progress
from .recipes import DEFAULT_RECIPE, NOISE_KINDS, RECIPES

# Commands import torch and the codec when they run, not when the command line is
# built: --help, --version and info's header start without torch (bench/startup.py).

model_option = click.option(
    "--model", "-m", default=None, help="Shipped model name or path to a model file."
)
force_option = click.option(
    "--force",
    "-f",
    is_flag=True,
    help="Overwrite existing outputs (a folder run without it skips the files already done).",
)
max_hours_option = click.option(
    "--max-hours",
    default=limits.MAX_SECONDS / 3600,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Longest audio one file may hold; longer files are refused before any work.",
)


class CommandError(click.ClickException):
    """A user error as one line, ``melcodec: error: ...`` (exit 1, 130 when interrupted)."""

    def show(self, file=None) -> None:
        click.echo(f"melcodec: {self.format_message()}", err=True)


class Group(click.Group):
    """Turns bad options, melcodec's own errors, OS errors and Ctrl-C into one-line errors.

    Anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # A bad option or argument: one line too, with where to look.
            where = exc.ctx.command_path if exc.ctx else "melcodec"
            raise CommandError(f"error: {exc.format_message()} (see {where} --help)") from None
        except MelcodecError as exc:
            raise CommandError(f"error: {exc}") from None
        except OSError as exc:
            text = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
            raise CommandError(f"error: {text}") from None
        except KeyboardInterrupt:
            error = CommandError("interrupted")
            error.exit_code = 130
            raise error from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="melcodec")
def cli() -> None:
    """A lossy audio codec from perceptually trained mel-spectrogram autoencoders."""


def _choice(flag: str, choices, default: str, help: str | None, *decls: str):
    """An option with a fixed set of values, its default shown in --help."""
    kinds = click.Choice(list(choices))
    return click.option(flag, *decls, default=default, show_default=True, type=kinds, help=help)


def codec_io(command):
    """SOURCE TARGET --model --force --max-hours: what encode and decode share."""
    for option in reversed(
        (
            click.argument("source", type=click.Path(path_type=Path)),
            click.argument("target", type=click.Path(path_type=Path)),
            model_option,
            force_option,
            max_hours_option,
        )
    ):
        command = option(command)
    return command


@cli.command()
@codec_io
def encode(source: Path, target: Path, model: str | None, force: bool, max_hours: float) -> None:
    """Encode an audio file (or a folder tree of them) to .mlc.

    '-' as SOURCE reads standard input, as TARGET writes standard output.
    """
    from . import data, files, zoo
    from .codec import Codec

    codec = Codec(zoo.load_model(model or DEFAULT_MODEL), max_hours=max_hours)
    if not source.is_dir():
        with _single_progress("encode") as update:
            files.encode_file(source, target, codec, force, update)
        return
    pairs = files.plan_tree(source, target, files.MLC_SUFFIX, data.find_audio)
    _run_tree(pairs, lambda s, t: files.encode_file(s, t, codec, force), "encode", force)


@cli.command()
@codec_io
@click.option("--float", "float32", is_flag=True, help="Write 32-bit float WAV.")
@_choice(
    "--format",
    ["wav", "flac"],
    "wav",
    "The format written when TARGET is '-' (standard output).",
    "pipe_format",
)
@click.option(
    "--sample-rate",
    default="16000",
    show_default=True,
    help="Output rate in Hz, or 'source' for the original file's rate.",
)
@click.option(
    "--gl-iters", default=DEFAULT_GL_ITERS, show_default=True, type=click.IntRange(0, 10000)
)
@click.option(
    "--gl-momentum",
    default=DEFAULT_GL_MOMENTUM,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
)
@_choice(
    "--phase-start",
    ["pghi", "random"],
    "pghi",
    "Griffin-Lim's starting phase: phase-gradient integration, or random.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Random phases (all of them with --phase-start random).",
)
def decode(
    source: Path,
    target: Path,
    model: str | None,
    force: bool,
    float32: bool,
    sample_rate: str,
    gl_iters: int,
    gl_momentum: float,
    phase_start: str,
    seed: int,
    max_hours: float,
    pipe_format: str,
) -> None:
    """Decode an .mlc file (or a folder tree of them) to WAV or FLAC.

    16-bit output goes through a limiter that acts only where a sample would
    clip, and says so on stderr; --float writes the audio as synthesised.
    '-' as SOURCE reads standard input, as TARGET writes standard output (--format).
    """
    from . import files
    from .codec import Codec, DecodeOptions

    rate = _parse_rate(sample_rate)
    options = DecodeOptions(gl_iters, gl_momentum, seed, rate, phase_start, max_hours=max_hours)
    codec = Codec.load(model) if model else None
    if not source.is_dir():
        with _single_progress("decode") as update:
            files.decode_file(
                source, target, codec, options, float32, force, update, _warn, pipe_format
            )
        return
    pairs = files.plan_tree(source, target, ".wav", lambda d: sorted(d.rglob("*.mlc")))

    def work(s: Path, t: Path) -> None:
        files.decode_file(s, t, codec, options, float32, force, notify=lambda m: _warn(f"{s}: {m}"))

    _run_tree(pairs, work, "decode", force)


def _warn(message: str) -> None:
    click.echo(f"melcodec: {message}", err=True)


@contextlib.contextmanager
def _single_progress(label: str):
    """Progress in tiles for one long file; quiet for short ones off a terminal."""
    bar = Progress(0, f"{label} (tiles)")
    try:
        yield bar.callback()
    finally:
        if bar.done:
            bar.close()


def _parse_rate(value: str) -> int | str | None:
    if value == "source":
        return "source"
    try:
        rate = int(value)
    except ValueError:
        raise UsageError(
            f"--sample-rate must be a number of Hz or 'source', got {value!r}"
        ) from None
    if not 8000 <= rate <= 192000:
        raise UsageError(f"--sample-rate must be from 8000 to 192000 Hz, got {rate}")
    return None if rate == 16000 else rate


def _run_tree(pairs, work, label: str, force: bool) -> None:
    from . import files

    if not pairs:
        raise UsageError("no input files found in the folder")
    # Outputs appear whole or not at all (atomic.py), so an existing one is finished:
    # an interrupted folder run, run again, does what is left.
    todo = pairs if force else [(s, t) for s, t in pairs if not t.exists()]
    outcomes = []
    if todo:
        bar = Progress(len(todo), label)
        outcomes = files.run_tree(todo, work, lambda n, o: bar.update(n, o.source.name))
        bar.close()
    failed = [o for o in outcomes if o.error]
    for o in failed:
        click.echo(f"melcodec: {o.source}: {o.error}", err=True)
    summary = f"{label}d {len(outcomes) - len(failed)} of {len(outcomes)} files"
    if len(todo) < len(pairs):
        summary += f"; {len(pairs) - len(todo)} already done, skipped (--force redoes them)"
    click.echo(summary, err=True)
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--decode/--no-decode",
    default=False,
    show_default=True,
    help="Also decode the file to report its peak (16 kHz, default settings; loads torch).",
)
@model_option
def info(path: Path, as_json: bool, decode: bool, model: str | None) -> None:
    """Show an .mlc file's header, duration and real bitrate (--decode: its decoded peak)."""
    summary = describe(path, decode, model)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        click.echo(f"{key:<{width}}  {value}")


@cli.command("eval")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--models", "names", default=DEFAULT_MODEL, show_default=True, help="Comma-separated."
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write all rows as JSON.")
@click.option(
    "--csv", "csv_out", type=click.Path(path_type=Path), help="Write per-file rows as CSV."
)
@click.option("--gl-iters", default=DEFAULT_GL_ITERS, show_default=True, type=click.IntRange(0))
@click.option("--peers", is_flag=True, help="Also Opus, MP3 and the Griffin-Lim ceiling.")
@_choice(
    "--output",
    ["pcm16", "float"],
    "pcm16",
    "Score the audio as decode writes it: 16-bit WAV (limited) or 32-bit float.",
)
@_choice(
    "--probability",
    ["best", "all"],
    "best",
    "Each model with its best probability model, or with every one it has (a row each).",
)
def eval_(
    path: Path,
    names: str,
    json_out: Path | None,
    csv_out: Path | None,
    gl_iters: int,
    peers: bool,
    output: str,
    probability: str,
) -> None:
    """Measure models on a file or folder: paper metrics, end to end, bitrate, speed."""
    from . import benchmark
    from .codec import DecodeOptions
    from .peers import default_peers

    files = benchmark.find_inputs(path)
    for out in (json_out, csv_out):
        if out is not None and not out.resolve().parent.is_dir():
            raise UsageError(f"output folder does not exist: {out.parent}")
    options = DecodeOptions(gl_iters=gl_iters)
    systems = _systems(names, options, probability)
    if peers:
        systems += default_peers()
    bar = Progress(len(systems) * len(files), "eval")
    rows = benchmark.run(systems, files, bar.callback(), output)
    bar.close()
    summary = benchmark.summarise(rows)
    click.echo(benchmark.table(summary))
    if json_out:
        benchmark.write_json(rows, summary, json_out)
    if csv_out:
        benchmark.write_csv(rows, csv_out)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--models", "names", default=DEFAULT_MODEL, show_default=True, help="Comma-separated."
)
@click.option("--clips", default=3, show_default=True, type=click.IntRange(1, 20))
@force_option
def plot(path: Path, target: Path, names: str, clips: int, force: bool) -> None:
    """The paper's Figure 2: input tiles and each model's output, as a PNG."""
    from . import benchmark, files, plots
    from .codec import Codec

    inputs = benchmark.find_inputs(path)[:clips]
    if target.suffix.lower() != ".png":
        raise UsageError(f"output must be a .png file: {target}")
    files.check_target(target, force)
    plots.figure2_of_files(inputs, [(n, Codec.load(n)) for n in _names(names)], target)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--models", "names", default=DEFAULT_MODEL, show_default=True, help="Comma-separated."
)
@click.option("--peers/--no-peers", default=True, show_default=True, help="Opus, MP3, ceiling.")
@click.option("--clips", default=6, show_default=True, type=click.IntRange(1))
@click.option("--gl-iters", default=DEFAULT_GL_ITERS, show_default=True, type=click.IntRange(0))
@force_option
def report(
    path: Path, target: Path, names: str, peers: bool, clips: int, gl_iters: int, force: bool
) -> None:
    """A static HTML listening page (TARGET/index.html) for models and peers."""
    from . import benchmark, files
    from . import report as reporting
    from .codec import DecodeOptions
    from .peers import default_peers

    inputs = benchmark.find_inputs(path)[:clips]
    files.check_target(target / "index.html", force, parent=target.parent)
    options = DecodeOptions(gl_iters=gl_iters)
    systems = _systems(names, options)
    if peers:
        systems += default_peers()
    bar = Progress(0, "report")
    page = reporting.build(systems, inputs, target, bar.callback())
    bar.close()
    click.echo(f"wrote {page}")


def _systems(names: str, options, probability: str = "best") -> list:
    """Each model as a system under test; with ``probability="all"`` one per probability
    model it has (same audio, other rates)."""
    from . import benchmark, entropy
    from .codec import Codec

    systems = []
    for name in _names(names):
        codec = Codec.load(name)
        if probability == "best":
            systems.append(benchmark.CodecSystem(codec, options))
            continue
        for prob_id in entropy.available_ids(codec.model.probability):
            label = f"{name} [{entropy.probability_model(prob_id, codec.model.probability).name}]"
            systems.append(benchmark.CodecSystem(Codec(codec.model, prob_id), options, label))
    return systems


def _names(names: str) -> list[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


@cli.command()
def models() -> None:
    """List the shipped and user models that --model NAME finds (* marks the default)."""
    from . import modelfiles

    for name in modelfiles.available():
        try:
            blob = modelfiles.read_file(modelfiles.resolve(name))
        except MelcodecError as exc:
            click.echo(f"{name}: {exc}")
            continue
        click.echo(_model_line(name, blob.get("card") or {}, blob["sha256"]))


def _model_line(name: str, card: dict, sha256: bytes) -> str:
    from .melconfig import MEL, TILE_FRAMES

    noise = f"noise({card['noise']})" if card.get("noise") else "noise"
    data_ = noise if card.get("data") == "noise" else "music"
    val = card.get("validation", {})
    fitted = card.get("probability") or {}
    # The encoder's choice: the context table where the file has one.
    kind = next((k for k in ("checkerboard_mix", "static_bernoulli") if k in fitted), None)
    bits = fitted.get(kind, {}).get("entropy_bits_per_tile")
    # Expected rate: the table's bits plus 21 bytes of chunk fields per 4.16 s tile.
    tile_seconds = TILE_FRAMES * MEL.hop_length / MEL.sample_rate
    rate = f" ~{(bits + 21 * 8) / tile_seconds / 1000:.1f}kbit/s" if bits else ""
    rate += f" ({kind.split('_')[0]} table)" if bits else ""
    mark = "*" if name == DEFAULT_MODEL else " "
    return (
        f"{name:<16}{mark} loss={card.get('loss')} data={data_} steps={card.get('steps')}"
        f"{rate} sha256={sha256.hex()[:12]} " + " ".join(f"{k}={v:.4g}" for k, v in val.items())
    )


@cli.command()
@click.option("--loss", required=True, type=click.Choice(["mse", "nlpd", "msssim"]))
@click.option(
    "--data", "data_", required=True, help="'noise' (its kind: --noise) or a folder of audio files."
)
@_choice(
    "--recipe",
    sorted(RECIPES),
    DEFAULT_RECIPE,
    "'paper' is the paper as written; see docs/training.md.",
)
@click.option("--steps", type=int, help="Optimiser steps [recipe].")
@click.option("--batch-size", type=int, help="Global batch size [recipe].")
@click.option("--crop", type=int, help="Square crop side, a multiple of 16 [recipe].")
@click.option("--lr", type=float, help="Learning rate [recipe].")
@click.option(
    "--noise",
    type=click.Choice(NOISE_KINDS),
    help="With --data noise: i.i.d. pixels (the paper), noise at every scale, or at every "
    "scale with streaks both ways (aniso) [recipe].",
)
@click.option(
    "--revive-every",
    type=click.IntRange(0),
    help="Revive dead latent channels every N steps, 0 for never [recipe].",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("runs/train"), show_default=True
)
@click.option("--name", default=None, help="Model name written into the card.")
@_choice("--device", ["auto", "cpu", "cuda"], "auto", None)
@click.option("--checkpoint-every", default=100, show_default=True, type=click.IntRange(1))
@click.option("--val-every", default=100, show_default=True, type=click.IntRange(1))
@click.option("--val-data", default=None, help="Folder of audio for validation tiles.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@_choice(
    "--compile",
    ["auto", "yes", "no"],
    "auto",
    "torch.compile the step; auto: for runs of 500 steps or more.",
)
def train(
    recipe: str, steps, batch_size, crop, lr, noise, revive_every, data_: str, **options
) -> None:
    """Train an autoencoder (the paper's recipe or ours); writes OUT/model.pt."""
    from . import train as training

    chosen = RECIPES[recipe].with_overrides(
        steps=steps, batch_size=batch_size, crop=crop, lr=lr, noise=noise, revive_every=revive_every
    )
    training.train(training.RunOptions(recipe=chosen, data=data_, **options))


@cli.command("fit-table")
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--data", "data_", required=True, help="Folder of training audio (never test data).")
@click.option(
    "--clips", default=2000, show_default=True, type=click.IntRange(1), help="Clips used."
)
@_choice(
    "--table",
    ["static", "context", "both"],
    "both",
    "static-bernoulli (id 1), checkerboard-mix (id 4), or both.",
    "which",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Default: in place (not for a model its folder's SHA256SUMS lists).",
)
def fit_table(model: Path, data_: str, clips: int, which: str, out: Path | None) -> None:
    """Fit MODEL's probability tables on training audio (every clips-th clip of it)."""
    from . import data, zoo
    from .tables import fit_table, spread

    zoo.check_writable(out or zoo.resolve(model))  # before minutes of reading audio
    chosen = spread(data.load_clips(data_)[0], clips)
    for kind in ("static", "context"):
        if which not in (kind, "both"):
            continue
        bar = Progress(0, f"{kind} table: encoding")
        info = fit_table(kind, model, chosen, out, bar.callback())
        bar.close()
        click.echo(
            f"{kind} table fitted on {info['fit_tiles']} tiles: "
            f"{info['entropy_bits_per_tile']:.0f} bits per tile expected (raw: 32768)"
        )
        # The second fit reads the file the first one wrote.
        model = out or model


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    cli.main(args=argv, prog_name="melcodec")
