"""``melcodec train``: the paper's training loop on CPU, one GPU, or many (DDP).

Run under ``torchrun --nproc_per_node N -m melcodec train ...`` for DDP: each
rank draws its own share of the global batch, and rank 0 alone writes files.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from . import data, evaluate, metrics, revive, trainstep, zoo
from .atomic import atomic_write
from .errors import UsageError
from .model import DOWNSAMPLING, Autoencoder
from .progress import Progress
from .recipes import Recipe

VALIDATION_TILES = 32
COMPILE_FROM = 500
# No revival in a run's last quarter: a channel revived when the cosine learning
# rate is nearly spent would cost bits before the decoder learnt to use it.
REVIVE_UNTIL = 0.75


@dataclass
class RunOptions:
    loss: str
    data: str  # "noise" or a folder of audio
    recipe: Recipe
    out: Path
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100
    val_every: int = 100
    val_data: str | None = None
    resume: bool = False
    name: str | None = None
    quiet: bool = False
    # torch.compile: "auto" compiles runs of COMPILE_FROM steps or more, where the
    # ~10 % faster step (bench/train_speed.py) repays the ~40 s compile on this CPU.
    compile: str = "auto"


def validate(opts: RunOptions) -> None:
    """Reject bad options before any work starts."""
    r = opts.recipe
    if opts.loss not in metrics.LOSSES:
        raise UsageError(f"unknown loss {opts.loss!r}; choose from {', '.join(metrics.LOSSES)}")
    if r.batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {r.batch_size}")
    if r.crop < 64 or r.crop > 256 or r.crop % DOWNSAMPLING:
        raise UsageError(f"crop must be a multiple of {DOWNSAMPLING} from 64 to 256, got {r.crop}")
    if r.steps < 1:
        raise UsageError(f"steps must be at least 1, got {r.steps}")
    if not r.lr > 0:
        raise UsageError(f"learning rate must be positive, got {r.lr}")
    if r.revive_every < 0:
        raise UsageError(f"revive-every must be 0 (never) or more, got {r.revive_every}")
    if r.revive_every and r.arch.final_norm:
        raise UsageError(
            f"recipe {r.name} normalises before the encoder's Tanh: use --revive-every 0"
        )
    if r.noise not in data.NOISE_KINDS:
        raise UsageError(f"noise must be one of {', '.join(data.NOISE_KINDS)}, got {r.noise!r}")
    if opts.data != "noise":
        if not Path(opts.data).is_dir():
            raise UsageError(f"data must be 'noise' or a folder of audio files: {opts.data}")
        if not data.find_audio(Path(opts.data), bare=True):
            raise UsageError(f"no audio files in {opts.data}")
    if opts.val_data is not None:
        if not Path(opts.val_data).is_dir():
            raise UsageError(f"--val-data must be a folder of audio files: {opts.val_data}")
        if not data.find_audio(Path(opts.val_data), bare=True):
            raise UsageError(f"no audio files in --val-data {opts.val_data}")
    if opts.compile not in ("auto", "yes", "no"):
        raise UsageError(f"compile must be auto, yes or no, got {opts.compile!r}")
    if opts.device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"device must be auto, cpu or cuda, got {opts.device!r}")
    if opts.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available")


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def _device(choice: str, local_rank: int) -> torch.device:
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def _load_data(
    opts: RunOptions, device: torch.device, rank: int, log
) -> tuple[object, torch.Tensor]:
    """Training source and the held-out validation tiles ``[n, 1, 256, 256]``."""
    r = opts.recipe
    if opts.data == "noise":
        source = data.NoiseImages(r.noise_images, opts.seed, device, r.noise)
        val = data.NoiseImages(0, opts.seed + 1, torch.device("cpu"), r.noise)
        val_tiles = val.batch(0, 0, VALIDATION_TILES, 256)
    else:
        # Rank 0 decodes the audio and writes the cache; the others then read it.
        if rank != 0:
            dist.barrier()
        bar = Progress(0, "reading audio") if rank == 0 and not opts.quiet else None
        clips, stats = data.load_clips(opts.data, progress=bar.callback() if bar else None)
        if bar:
            bar.close()
        if rank == 0 and dist.is_initialized():
            dist.barrier()
        log(f"data: {json.dumps(stats)}")
        # Held-out clips are never trained on; a single clip is both (validation
        # then only shows the training fit).
        held = trainstep.hold_out(len(clips))
        source = data.ClipTiles(clips[~held], opts.seed, device)
        val_tiles = (clips[held] if held.any() else clips)[:VALIDATION_TILES].float()
    if opts.val_data:
        val_tiles = evaluate.tiles_of(data.find_audio(Path(opts.val_data)))[:VALIDATION_TILES]
    return source, val_tiles


def train(opts: RunOptions) -> Path:
    """Run (or resume) a training run; returns the model file written by rank 0."""
    validate(opts)
    rank, world, local_rank = _distributed()
    r = opts.recipe
    if r.batch_size % world:
        raise UsageError(f"batch size {r.batch_size} does not split over {world} processes")
    device = _device(opts.device, local_rank)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0

    def log(msg: str) -> None:
        if is_main and not opts.quiet:
            print(msg, flush=True)

    out = Path(opts.out)
    ckpt_path, model_path = out / "checkpoint.pt", out / "model.pt"
    state = _resume_state(opts, ckpt_path, device) if opts.resume else None
    source, val_tiles = _load_data(opts, device, rank, log)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)
    random.seed(opts.seed)
    net = Autoencoder(r.arch).to(device).to(memory_format=torch.channels_last)
    optim = torch.optim.AdamW(net.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    start, elapsed, val_metrics = 0, 0.0, {}
    if state:
        net.load_state_dict(state["weights"])
        optim.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start, elapsed, val_metrics = state["step"], state["elapsed"], state.get("val", {})
        log(f"resumed from {ckpt_path} at step {start}")
    if start >= r.steps and model_path.exists():
        log(f"run already complete: {model_path}")
        return model_path
    model = DistributedDataParallel(net) if world > 1 else net
    if opts.compile == "yes" or (opts.compile == "auto" and r.steps - start >= COMPILE_FROM):
        model = torch.compile(model)
    loss_fn = metrics.LOSSES[opts.loss]
    local_batch = r.batch_size // world
    autocast = trainstep.autocast_for(device)
    log_file = _open_log(out / "log.jsonl", start) if is_main else None
    bar = Progress(r.steps, "train", start=start) if is_main and not opts.quiet else None
    t_start = time.monotonic() - elapsed
    revive_every = r.revive_every
    if revive_every and local_batch * (r.crop // DOWNSAMPLING) ** 2 < revive.MIN_CODES:
        log(f"no revival of dead channels: a batch has under {revive.MIN_CODES} codes per channel")
        revive_every = 0
    for step in range(start, r.steps):
        lr = trainstep.set_lr(optim, r, step)
        x = source.batch(step, rank * local_batch, local_batch, r.crop).contiguous(
            memory_format=torch.channels_last
        )
        t0 = time.monotonic()
        loss = trainstep.step(model, optim, loss_fn, x, autocast)
        loss_value = _global_mean(loss, world)
        dt = time.monotonic() - t0
        done = step + 1
        record = {"step": done, "loss": loss_value, "lr": lr}
        record |= {"seconds": round(dt, 4), "images_per_s": round(r.batch_size / dt, 2)}
        if revive_every and done % revive_every == 0 and done < REVIVE_UNTIL * r.steps:
            revived = _revive(net, optim, x, opts.seed, done, world)
            record["revived"] = revived.tolist()
            if revived.numel():
                log(f"step {done}: revived latent channels {revived.tolist()}")
        if done % opts.val_every == 0 or done == r.steps:
            val_metrics = evaluate.summary(evaluate.per_tile(net, val_tiles))
            record["val"] = val_metrics
        if log_file:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if bar:
            bar.update(done, f"loss {loss_value:.4f} {r.batch_size / dt:.1f} img/s")
        if is_main and (done % opts.checkpoint_every == 0 or done == r.steps):
            run = _run_identity(opts)
            _checkpoint(ckpt_path, net, optim, done, time.monotonic() - t_start, val_metrics, run)
    if bar:
        bar.close()
    if log_file:
        log_file.close()
    if is_main:
        card = _card(opts, device, world, time.monotonic() - t_start, val_metrics)
        zoo.save_model(model_path, net, card, r.to_dict())
        log(f"wrote {model_path} (validation: {json.dumps(val_metrics)})")
    if world > 1:
        dist.destroy_process_group()
    return model_path


def _revive(net, optim, x: torch.Tensor, seed: int, step: int, world: int) -> torch.Tensor:
    """Revive the dead channels that rank 0's batch shows; every rank ends with its weights."""
    flags = torch.zeros(net.cfg.latent_channels, dtype=torch.uint8, device=x.device)
    flags[revive.dead_channels(net, x)] = 1
    if world > 1:
        dist.broadcast(flags, 0)
    channels = torch.nonzero(flags).flatten()
    gen = torch.Generator().manual_seed(data.mix_seed(seed, step, "revive"))
    revive.revive(net, optim, x, channels, gen)
    if world > 1 and channels.numel():
        for param in revive.revived_parameters(net):
            dist.broadcast(param.data, 0)
    return channels.cpu()


def _run_identity(opts: RunOptions) -> dict:
    """What a resumed run must share with the run it continues."""
    return {"loss": opts.loss, "data": str(opts.data), "seed": opts.seed, **opts.recipe.to_dict()}


def _resume_state(opts: RunOptions, path: Path, device: torch.device) -> dict | None:
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=True)
    saved, wanted = state.get("run", {}), _run_identity(opts)
    changed = sorted(k for k in wanted if saved.get(k) != wanted[k])
    if changed:
        raise UsageError(
            f"cannot resume {path}: it was trained with other {', '.join(changed)}; "
            "use the same options or another --out"
        )
    return state


def _open_log(path: Path, start: int):
    """Append to the step log, first dropping steps after the checkpoint we resume from."""
    if path.exists():
        kept = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= start
        ]
        path.write_text("".join(line + "\n" for line in kept))
    return open(path, "a")  # noqa: SIM115 - closed by the training loop


def _card(opts: RunOptions, device: torch.device, world: int, wall: float, val: dict) -> dict:
    r = opts.recipe
    return {
        "name": opts.name or f"{opts.loss}-{'noise' if opts.data == 'noise' else 'music'}",
        "loss": opts.loss,
        "data": "noise" if opts.data == "noise" else Path(opts.data).name,
        "recipe": r.name,
        **({"noise": r.noise} if opts.data == "noise" else {}),
        "steps": r.steps,
        "batch_size": r.batch_size,
        "crop": r.crop,
        "lr": r.lr,
        "seed": opts.seed,
        "device": _device_name(device, world),
        "wall_time_s": round(wall, 1),
        "validation": val,
        "torch": str(torch.__version__),
    }


def _global_mean(value: torch.Tensor, world: int) -> float:
    if world > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= world
    return float(value)


def _checkpoint(path: Path, net, optim, step: int, elapsed: float, val: dict, run: dict) -> None:
    state = {
        "weights": net.state_dict(),
        "optimizer": optim.state_dict(),
        "rng": torch.get_rng_state(),
        "step": step,
        "elapsed": elapsed,
        "val": val,
        "run": run,
    }
    atomic_write(path, lambda fh: torch.save(state, fh))


def _device_name(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu x{torch.get_num_threads()} threads"
    return f"{world} x {name}" if world > 1 else name
