"""Train the StyleColorizer: ``accelerate launch -m training.train --data FOLDER ...`` (or ``python -m``).

Runs on the CPU, one GPU, or several GPUs/nodes (accelerate's launcher), in the precision that
``accelerate config`` or ``accelerate launch --mixed_precision`` chose unless ``--mixed-precision``
says otherwise. The validation photos come from the fixed split of
``colorizer.evaluation.validation_split`` and are never trained on. Everything lands in
``--output-dir``: ``logs/`` (the metrics, through accelerate's trackers: TensorBoard by default),
``samples/``, ``checkpoints/checkpoint_N`` (``accelerator.save_state`` with accelerate's automatic
naming and rotation, for exact resume) and ``best/`` (the best validation checkpoint exported with
``save_pretrained``, model card included).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.tracking import get_available_trackers
from accelerate.utils import LoggerType, ProjectConfiguration, set_seed
from huggingface_hub import HfApi
from PIL import Image
from tqdm.auto import tqdm

from colorizer.evaluation import Case, image_files, make_case, score, validation_split
from colorizer.style_colorizer import StyleColorizer
from training.data import RecolorCrops, load_photos, resolve_data
from training.perceptual import build_lpips

log = get_logger("training")  # accelerate's logger: messages from the main process only


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, help="image folder, or a Hub dataset repo id (owner/name) of image files")
    g.add_argument("--image-size", type=int, default=384, help="photos are held in memory at this long side")
    g.add_argument("--crop-size", type=int, default=128, help="training crop side (a multiple of 16)")
    g.add_argument("--style-size", type=int, default=128, help="side of the style crop")
    g.add_argument(
        "--recolor-prob", type=float, default=1.0, help="share of samples whose chroma is rotated and scaled"
    )
    g.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
    g = p.add_argument_group("model")
    g.add_argument("--style-dim", type=int, default=32)
    g.add_argument("--bottom-stages", type=int, default=3)
    g.add_argument("--dropout", type=float, default=0.1)
    g.add_argument("--tone-knots", type=int, default=8, help="gray levels of the style tone curve")
    g.add_argument("--working-size", type=int, default=512, help="long side the exported model colorizes at by default")
    g.add_argument(
        "--init-from", help="start from this checkpoint folder or Hub repo (fine-tuning) instead of random weights"
    )
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--steps", type=int, default=5000, help="0: only validate and export the --init-from checkpoint"
    )
    g.add_argument("--batch-size", type=int, default=8, help="per process")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine")
    g.add_argument("--warmup-steps", type=int, default=100)
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument(
        "--mixed-precision",
        choices=("no", "fp16", "bf16"),
        help="default: what `accelerate config` or `accelerate launch --mixed_precision` set, else no",
    )
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("loss")
    g.add_argument("--mse-weight", type=float, default=1.0)
    g.add_argument("--lpips-weight", type=float, default=0.1, help="0 turns LPIPS off")
    g.add_argument("--lpips-net", choices=("vgg", "alex", "squeeze"), default="vgg")
    g.add_argument(
        "--lpips-backbone",
        help="VGG16 weights for LPIPS' trunk (safetensors file or Hub repo), used with lpips=False; "
        "default: the standard LPIPS, which downloads torchvision's backbone",
    )
    g.add_argument(
        "--lpips-size", type=int, default=64, help="LPIPS runs on the pair downscaled to this side (0: full crop)"
    )
    g = p.add_argument_group("validation, checkpoints, export")
    g.add_argument("--output-dir", type=Path, default=Path("artifacts/style-colorizer"))
    g.add_argument("--val-every", type=int, default=250)
    g.add_argument("--val-images", type=int, default=16, help="validation photos scored (0: all of the split)")
    g.add_argument(
        "--bn-batches",
        type=int,
        default=100,
        help="training batches that BatchNorm statistics are recomputed on before each validation and export "
        "(0: keep training's moving averages)",
    )
    g.add_argument("--checkpoint-every", type=int, default=250)
    g.add_argument("--keep-checkpoints", type=int, default=2, help="the newest N are kept (0: all)")
    g.add_argument("--resume", help="checkpoint folder to resume from, or 'latest'")
    g.add_argument(
        "--export-dtype", choices=("float16", "float32"), default="float16", help="dtype of the exported parameters"
    )
    g.add_argument(
        "--push-to-hub", metavar="REPO", help="upload the best checkpoint to this Hub repo (token: HF_TOKEN)"
    )
    g.add_argument("--hub-private", action="store_true")
    g = p.add_argument_group("metrics")
    g.add_argument(
        "--log-with",
        nargs="*",
        default=["tensorboard"],
        choices=LoggerType.list(),
        metavar="TRACKER",
        help="accelerate's trackers for the metrics (default: tensorboard, under OUTPUT_DIR/logs), of "
        f"{', '.join(LoggerType.list())}; 'all': every one installed; none given: no tracker",
    )
    g.add_argument("--log-every", type=int, default=25)
    args = p.parse_args(argv)
    # accelerate would drop a tracker whose package is missing without a word.
    missing = sorted(set(args.log_with) - {"all"} - {tracker.value for tracker in get_available_trackers()})
    if missing:
        p.error(f"--log-with {missing[0]}: its package is not installed (tensorboard: `pip install -e .[train]`)")
    if args.crop_size % 16:
        p.error("--crop-size must be a multiple of 16")
    if args.steps < 0 or (args.steps == 0 and not args.init_from):
        p.error("--steps must be positive (0 only with --init-from: validate and export that checkpoint)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.output_dir
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=args.log_with,
        project_config=ProjectConfiguration(
            project_dir=str(out),
            logging_dir=str(out / "logs"),
            automatic_checkpoint_naming=True,  # checkpoints/checkpoint_N ...
            total_limit=args.keep_checkpoints or None,  # ... the oldest removed beyond this many
        ),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        # Without this check each process would train alone, all writing to the same output folder.
        raise SystemExit(
            f"launched as {launched} processes, but accelerate runs {accelerator.num_processes}: "
            "without GPUs, run `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N -m training.train ...`"
        )
    log.logger.setLevel(logging.INFO)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)

    options = {"dropout": args.dropout, "style_size": args.style_size, "working_size": args.working_size}
    # What comes from the network (a Hub dataset, an --init-from repo, LPIPS' weights) is downloaded by
    # one process per machine, whose cache it fills; the machine's other processes then read the cache.
    with accelerator.local_main_process_first():
        root = resolve_data(args.data)
        if args.init_from:  # the checkpoint fixes the architecture; the other options are this run's
            model = StyleColorizer.from_pretrained(args.init_from, **options)
        else:
            model = StyleColorizer(
                style_dim=args.style_dim, bottom_stages=args.bottom_stages, tone_knots=args.tone_knots, **options
            )
        perceptual = build_lpips(args.lpips_net, args.lpips_backbone) if args.lpips_weight > 0 else None
    train_paths, val_paths = validation_split(image_files(root), root)
    if not train_paths or not val_paths:
        raise ValueError(f"{root} has {len(train_paths)} training and {len(val_paths)} validation images; need both")
    photos = load_photos(train_paths, args.image_size)
    world = accelerator.num_processes
    dataset = RecolorCrops(
        photos,
        args.steps * args.batch_size * world,
        crop=args.crop_size,
        style_size=args.style_size,
        recolor_prob=args.recolor_prob,
        seed=args.seed,
    )
    # The loader's own generator: starting an iterator must not draw from the global RNG (dropout's),
    # or a resumed run would diverge from an uninterrupted one.
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    # Other samples than training's (another seed), the same at every validation.
    calibration = torch.utils.data.DataLoader(
        RecolorCrops(
            photos,
            args.bn_batches * args.batch_size,
            crop=args.crop_size,
            style_size=args.style_size,
            recolor_prob=args.recolor_prob,
            seed=args.seed + 1,
        ),
        batch_size=args.batch_size,
    )

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    # accelerate steps a prepared scheduler once per process per optimizer step: count in those units.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(args, world))
    if perceptual is not None:
        perceptual = perceptual.to(accelerator.device)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    state = {"step": 0, "best": math.inf, "best_step": None}
    if args.resume:
        ckpt = _latest_checkpoint(out) if args.resume == "latest" else Path(args.resume)
        accelerator.load_state(str(ckpt))
        state = json.loads((ckpt / "trainer_state.json").read_text())
        log.info("resumed from %s at step %d", ckpt, state["step"])
    # accelerate numbers checkpoints from 0 in each run: continue after those already in the folder.
    accelerator.project_configuration.iteration = 1 + max(map(_checkpoint_number, _checkpoints(out)), default=-1)
    batches = accelerator.skip_first_batches(loader, state["step"]) if state["step"] else loader

    cases = _validation_cases(val_paths, args.val_images)
    run_info = {
        "data": f"{args.data} ({len(photos)} training photos; the fixed validation split's "
        f"{len(val_paths)} photos held out)",
        "processes": world,
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
    }
    plain = accelerator.unwrap_model(model)  # the module itself, without a DDP wrapper: for validation and export
    n_params = sum(p.numel() for p in model.parameters())
    log.info("training %s: %d params, %s", type(plain).__name__, n_params, run_info)
    accelerator.init_trackers("style-colorizer", config=_tracker_config({**vars(args), **run_info}))

    bar = tqdm(
        total=args.steps,
        initial=state["step"],
        disable=not accelerator.is_local_main_process,
        mininterval=5,
        file=sys.stderr,
    )
    tic, seen = time.perf_counter(), 0
    if args.steps == 0 and accelerator.is_main_process:  # nothing to train: score and export --init-from as it is
        accelerator.log(_validate_and_export(plain, calibration, cases, state, args, run_info), step=0)
    for batch in batches:
        loss, mse, lp = training_loss(model, perceptual, batch, args)
        accelerator.backward(loss)
        if args.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        seen += batch["target"].shape[0] * world
        step = state["step"]
        bar.update(1)

        if step % args.log_every == 0 or step == args.steps:
            rate = seen / (time.perf_counter() - tic)
            metrics = {
                "train/loss": loss.item(),
                "train/mse": mse.item(),
                "train/lpips": lp.item(),
                "train/lr": scheduler.get_last_lr()[0],
                "train/img_per_s": rate,
            }
            accelerator.log(metrics, step=step)
            bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{rate:.1f}")
            log.info(
                "step %d loss %.4f (mse %.4f, lpips %.4f) lr %.2e, %.2f img/s",
                step,
                metrics["train/loss"],
                metrics["train/mse"],
                metrics["train/lpips"],
                metrics["train/lr"],
                rate,
            )
            tic, seen = time.perf_counter(), 0

        if step % args.val_every == 0 or step == args.steps:
            if accelerator.is_main_process:
                accelerator.log(_validate_and_export(plain, calibration, cases, state, args, run_info), step=step)
            accelerator.wait_for_everyone()
            model.train()
        if step % args.checkpoint_every == 0 or step == args.steps:
            _checkpoint(accelerator, state)
        if step >= args.steps:
            break
    bar.close()

    if args.push_to_hub and accelerator.is_main_process:
        url = _push(out / "best", args.push_to_hub, args.hub_private, state)
        log.info("uploaded %s to %s", out / "best", url)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


def training_loss(model, perceptual, batch: dict[str, torch.Tensor], args: argparse.Namespace):
    """(loss, mse, lpips) of one batch: ``mse_weight`` x MSE + ``lpips_weight`` x LPIPS on ``lpips_size`` px."""
    pred = model(batch["gray"], batch["style"]).float()
    target = batch["target"]
    mse = F.mse_loss(pred, target)
    if perceptual is None:
        return args.mse_weight * mse, mse, torch.zeros(())
    lp = perceptual(_shrink(pred, args.lpips_size), _shrink(target, args.lpips_size), normalize=True).mean()
    return args.mse_weight * mse + args.lpips_weight * lp, mse, lp


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches) -> None:
    """Set every BatchNorm's running statistics to the exact average over ``batches``, dropout off.

    The moving averages kept during training follow the last few dozen batches of a changing
    network, and validation scores swung with them; with exact averages a score depends on the
    weights alone.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    was_training = model.training
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
        norm.train()
    device = next(model.parameters()).device
    for batch in batches:
        model(batch["gray"].to(device), batch["style"].to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.train(was_training)


def _schedule(args: argparse.Namespace, world: int):
    warmup, total = args.warmup_steps * world, max(1, args.steps * world)

    def factor(count: int) -> float:
        if count < warmup:
            return (count + 1) / warmup
        if args.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (count - warmup) / max(1, total - warmup))))

    return factor


def _shrink(x: torch.Tensor, size: int) -> torch.Tensor:
    if size <= 0 or x.shape[-1] <= size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _validation_cases(paths: list[Path], limit: int) -> dict[str, list[Case]]:
    paths = paths[:limit] if limit else paths
    return {kind: [make_case(p, kind) for p in paths] for kind in ("colorize", "restyle")}


def _validate_and_export(
    model: StyleColorizer, calibration, cases: dict[str, list[Case]], state: dict, args, run_info: dict
) -> dict[str, float]:
    """Recompute BatchNorm statistics, score the protocol's colorize and restyle cases, save a sample grid,
    export when best. Returns the scores, named for the trackers."""
    step, out = state["step"], args.output_dir
    if args.bn_batches > 0:
        recalibrate_batchnorm(model, calibration)
    outputs = {kind: [model.colorize(c.source, c.reference) for c in kind_cases] for kind, kind_cases in cases.items()}
    metrics = {
        kind: sum(score(o, c.truth)[0] for o, c in zip(outputs[kind], cases[kind])) / len(cases[kind]) for kind in cases
    }
    value = (metrics["colorize"] + metrics["restyle"]) / 2
    log.info("validation step %d: colorize dE00 %.2f, restyle dE00 %.2f", step, metrics["colorize"], metrics["restyle"])
    (out / "samples").mkdir(exist_ok=True)
    _sample_grid(cases, outputs, rows=4).save(out / "samples" / f"step_{step:07d}.jpg", quality=88)
    if value < state["best"]:
        state.update(best=value, best_step=step)
        _export(model, out / "best", args, run_info, step, metrics, len(cases["colorize"]))
        log.info("new best (mean dE00 %.2f): exported to %s", value, out / "best")
    return {f"val/{kind}_de00": de for kind, de in metrics.items()}


def _sample_grid(
    cases: dict[str, list[Case]], outputs: dict[str, list[Image.Image]], rows: int, height: int = 128
) -> Image.Image:
    """One row per photo: gray input | colorized | truth | restyle style | restyled | restyle truth."""
    tiles = []
    for i in range(min(rows, len(cases["colorize"]))):
        c, r = cases["colorize"][i], cases["restyle"][i]
        tiles.append([c.source, outputs["colorize"][i], c.truth, r.reference, outputs["restyle"][i], r.truth])
    tiles = [[t.resize((max(1, round(t.width * height / t.height)), height)) for t in row] for row in tiles]
    width = max(sum(t.width for t in row) for row in tiles)
    grid = Image.new("RGB", (width, height * len(tiles)), "white")
    for y, row in enumerate(tiles):
        x = 0
        for tile in row:
            grid.paste(tile, (x, y * height))
            x += tile.width
    return grid


def _export(model: StyleColorizer, folder: Path, args, run_info: dict, step: int, metrics: dict, n_val: int) -> None:
    """save_pretrained into ``folder`` (replaced whole), parameters cast to ``--export-dtype``, with the model card."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    clone = copy.deepcopy(model).cpu()
    for param in clone.parameters():
        # Parameters only: BatchNorm statistics stay float32, the style features' variance can
        # exceed float16's range (65504).
        param.data = param.data.to(getattr(torch, args.export_dtype))
    if args.lpips_weight <= 0:
        loss = f"{args.mse_weight} x MSE (LPIPS off)"
    else:
        trunk = f"trunk weights {Path(args.lpips_backbone).name}, lpips=False" if args.lpips_backbone else "standard"
        loss = (
            f"{args.mse_weight} x MSE + {args.lpips_weight} x LPIPS({args.lpips_net}, {trunk}, on {args.lpips_size} px)"
        )
    origin = f" fine-tuned from {args.init_from}" if args.init_from else ""
    training = "\n".join(
        [
            f"- Data: {run_info['data']}.",
            (
                f"- Samples: random square crops ({args.crop_size} px from photos held at {args.image_size} px long "
                f"side), random flips; with probability {args.recolor_prob} the target's Lab chroma is rotated by a "
                "uniform random angle and scaled by 0.7-1.3, and the style image is another crop (70-100% of each "
                "side) of the same recoloured photo."
            ),
            f"- Loss: {loss}.",
            (
                f"- Optimiser: AdamW, lr {args.lr} ({args.lr_schedule}, {args.warmup_steps} warm-up steps), weight "
                f"decay {args.weight_decay}, batch {args.batch_size} x {run_info['processes']} process(es), mixed "
                f"precision {run_info['mixed_precision']}, on {run_info['device']}."
            ),
            f"- Steps: this checkpoint is step {step} of a {args.steps}-step run{origin}.",
            (
                f"- BatchNorm statistics recomputed over {args.bn_batches} batches of training samples (dropout off)."
                if args.bn_batches > 0
                else "- BatchNorm statistics: training's moving averages."
            ),
            f"- Parameters stored as {args.export_dtype}, BatchNorm statistics as float32.",
        ]
    )
    table = "\n".join(
        [
            (
                f"Protocol of `colorizer/evaluation.py` on {n_val} validation photos "
                "(mean CIEDE2000 against the truth, lower is better):"
            ),
            "",
            "| case | mean dE00 |",
            "| --- | --- |",
            f"| colorize | {metrics['colorize']:.2f} |",
            f"| restyle | {metrics['restyle']:.2f} |",
        ]
    )
    card = {"training": training, "metrics": table}
    if args.push_to_hub:
        card["repo_id"] = args.push_to_hub
    clone.save_pretrained(tmp, model_card_kwargs=card)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _checkpoint(accelerator: Accelerator, state: dict) -> None:
    """``save_state`` into the next ``checkpoints/checkpoint_N`` (accelerate removes the oldest beyond
    ``--keep-checkpoints``), then the step and best score beside it, as JSON rather than a pickle."""
    folder = Path(accelerator.save_state())
    if accelerator.is_main_process:
        (folder / "trainer_state.json").write_text(json.dumps(state))
    accelerator.wait_for_everyone()


def _checkpoints(out: Path) -> list[Path]:
    return list((out / "checkpoints").glob("checkpoint_*"))


def _checkpoint_number(folder: Path) -> int:
    return int(folder.name.removeprefix("checkpoint_"))


def _latest_checkpoint(out: Path) -> Path:
    """The newest complete checkpoint: its trainer_state.json is written last."""
    found = [p for p in _checkpoints(out) if (p / "trainer_state.json").is_file()]
    if not found:
        raise FileNotFoundError(f"no checkpoint to resume under {out / 'checkpoints'}")
    return max(found, key=_checkpoint_number)


def _push(folder: Path, repo: str, private: bool, state: dict) -> str:
    """Upload the exported folder as one commit. HfApi reads the token from HF_TOKEN (or a saved login)."""
    api = HfApi()
    repo_id = api.create_repo(repo, private=private, exist_ok=True).repo_id
    info = api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message=f"StyleColorizer, best of step {state['best_step']}"
    )
    return info.commit_url


def _tracker_config(values: dict) -> dict:
    """The run's options for the trackers, which take numbers, strings, booleans and None only."""
    return {k: v if v is None or isinstance(v, (bool, int, float, str)) else str(v) for k, v in values.items()}


if __name__ == "__main__":
    # The program's lines on stderr; accelerate's own stay at WARNING unless ACCELERATE_LOG_LEVEL says otherwise.
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sys.exit(main())
