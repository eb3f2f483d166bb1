# Copyright 2026 reloc_ros contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The one training loop every method plugs into: torch.distributed, data, checkpoints, resume, progress.

A method (the APRs, CamNet, PMNet) is a :class:`Method`: it builds its net
and optimiser from the loaded data, trains one epoch, validates, and exports
the best epoch. :func:`fit` runs the rest, the same for every method:

* under ``torchrun`` (:func:`start_run`) every rank joins the process group
  torchrun describes (gloo on CPU, nccl on CUDA) and takes its share of each
  epoch's permutation (:func:`rank_batches`); rank 0 loads the bags first and
  fills the cache (:func:`load_data`), then validates, logs, checkpoints and
  exports;
* reproducible: each epoch's shuffling, augmentation and dropout draw from
  generators seeded by (seed, epoch);
* resumable: a checkpoint is written atomically after every epoch; ``resume``
  checks that the configuration and data are the run's own before loading
  anything, and continues to the result the uninterrupted run would reach;
* the best epoch (median validation translation error) is what gets exported;
* Ctrl-C says where the checkpoint is and how to continue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import torch

from reloc_ros import __version__
from reloc_ros.data.bag import BagSource, read_bag_dataset
from reloc_ros.data.types import PoseDataset
from reloc_ros.errors import RelocError
from reloc_ros.io_utils import atomic_path, check_output_file
from reloc_ros.modelfile import pick_device
from reloc_ros.training.config import TrainConfig, TrainResult

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
"""Newest training checkpoint format this reloc_ros writes and reads."""


# ---------------------------------------------------------------------------
# torch.distributed
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    """This process's place in the torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the rank that logs, validates, checkpoints and exports."""
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def wrap_ddp(net: torch.nn.Module, run: "Run") -> torch.nn.Module:
    """Return ``net`` in DistributedDataParallel under torchrun, ``net`` itself otherwise."""
    if run.dist.world <= 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[run.dev.index] if run.dev.type == "cuda" else None)


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

def checkpoint_path_for(model_path: Path) -> Path:
    """Return the checkpoint of the run that writes ``model_path``: ``<model>.ckpt`` beside it."""
    return model_path.with_name(model_path.name + ".ckpt")


def onnx_path_for(model_path: Path) -> Path:
    """Return the ONNX model a run with ``onnx`` writes beside ``model_path``: ``<model stem>.onnx``."""
    return model_path.with_suffix(".onnx")


def check_outputs(model_path: Path, onnx: bool = False) -> None:
    """Raise ``ValueError`` now, before any work, if the model, its checkpoint or its .onnx cannot be written.

    Refused: a directory at one of those paths, a missing or unwritable
    directory (:func:`reloc_ros.io_utils.check_output_file`); the .onnx only
    with ``onnx``.
    """
    model_path = Path(model_path)
    check_output_file(model_path, "model")
    check_output_file(checkpoint_path_for(model_path), "checkpoint")
    if onnx:
        check_output_file(onnx_path_for(model_path), "ONNX model")


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` atomically: a crash leaves the previous checkpoint, never half of one."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """Read a reloc_ros training checkpoint; RelocError for anything else."""
    if not path.exists():
        raise ValueError(f"no checkpoint to resume at '{path}'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RelocError(f"'{path}' is not a readable checkpoint (corrupt or foreign): {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != "reloc_ros.checkpoint":
        raise RelocError(f"'{path}' is not a reloc_ros training checkpoint")
    if state.get("format_version", 0) > CHECKPOINT_FORMAT:
        raise RelocError(f"checkpoint '{path}' has format {state['format_version']}, newer than this "
                         f"reloc_ros ({__version__}) reads ({CHECKPOINT_FORMAT}); update reloc_ros")
    return state


def _differences(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# ---------------------------------------------------------------------------
# A run: target, devices, data
# ---------------------------------------------------------------------------

@dataclass
class Run:
    """Where a run writes, on which device and rank, what data it reads and the checkpoint it resumes."""

    out: Path
    ckpt_path: Path
    dev: torch.device
    dist: Dist
    data_id: dict
    state: dict | None


def start_run(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, out: str | Path, resume: bool,
              device: str) -> Run:
    """Check the target, join torch.distributed, and load the checkpoint to resume."""
    out = Path(out)
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise ValueError(f"cannot write the model to '{out}': directory '{out.parent}' is missing or not writable")
    check_outputs(out)
    ckpt_path = checkpoint_path_for(out)
    if ckpt_path.exists() and not resume:
        raise ValueError(f"a checkpoint of an earlier run exists at '{ckpt_path}': pass --resume (trainer_node: "
                         "resume:=true) to continue it, or delete it to start over")
    dev = pick_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    d = init_distributed(dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    data_id = {"bags": [str(Path(b).resolve()) for b in bags], "source": asdict(source)}
    state = None
    if resume:  # check before the (slow) data loading that the run really is the same
        state = load_checkpoint(ckpt_path)
        diffs = _differences(state["config"], cfg.to_dict()) + _differences(state["data"], data_id)
        if diffs:
            raise ValueError(f"--resume with a different configuration than checkpoint '{ckpt_path}': "
                             + "; ".join(diffs))
    return Run(out, ckpt_path, dev, d, data_id, state)


def load_data(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, cache_dir: str | Path | None,
              d: Dist, progress: bool) -> PoseDataset:
    """Read the bags' posed frames at the run's input size; rank 0 decodes and fills the cache first."""
    if not d.main:
        barrier(d)
    ds = read_bag_dataset(bags, source, image_size=cfg.input_size, preprocessing=cfg.preprocessing,
                          cache_dir=cache_dir, progress=progress and d.main)
    if d.main:
        barrier(d)
    if len(ds) < cfg.min_frames:
        raise RelocError(f"only {len(ds)} posed frames in {ds.source}; training needs at least {cfg.min_frames} "
                         f"({ds.skipped})")
    return ds


# ---------------------------------------------------------------------------
# Epochs
# ---------------------------------------------------------------------------

def rank_batches(n: int, batch_size: int, gen: torch.Generator, d: Dist) -> list[torch.Tensor]:
    """Return this rank's batches of this epoch: indices into ``range(n)``, each rank an equal share, none of one item.

    Batches of one are dropped: batch normalisation needs two images.
    """
    per_rank = n // d.world
    perm = torch.randperm(n, generator=gen)[d.rank::d.world][:per_rank]
    return [b for b in (perm[i:i + batch_size] for i in range(0, per_rank, batch_size)) if len(b) >= 2]


def progress_bar(batches: Iterable, desc: str, show: bool):
    """Wrap ``batches`` in a tqdm bar (shown only on rank 0 with progress on)."""
    from tqdm import tqdm

    return tqdm(batches, desc=desc, unit="batch", leave=False, disable=not show)


def take_step(opt: torch.optim.Optimizer, loss: torch.Tensor, parts: dict, sums: dict, n: int, hint: str,
              before_step=None) -> None:
    """Check the loss is finite (else RelocError with ``hint``), step, and add the terms times ``n`` to ``sums``.

    ``before_step`` (optional) runs between the backward pass and the
    optimiser step (CamNet averages its gradients across ranks there).
    """
    if not torch.isfinite(loss):
        raise RelocError(f"loss became {loss.item()} {hint}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if before_step is not None:
        before_step()
    opt.step()
    for k, v in {"loss": loss, **parts}.items():
        sums[k] = sums.get(k, 0.0) + float(v.detach()) * n


def mean_terms(sums: dict, batches: Sequence) -> dict[str, float]:
    """Per-sample means of the loss terms :func:`take_step` summed over ``batches``."""
    n_seen = sum(len(b) for b in batches)
    return {k: v / max(n_seen, 1) for k, v in sums.items()}


# ---------------------------------------------------------------------------
# Validation split and the verdict
# ---------------------------------------------------------------------------

SPLIT_WORDS = {"spatial": "regions of place and view held out of the mapping run",
               "time": "time blocks of the mapping run"}
"""What the validation frames are, for each ``val_split`` (logs and the ``quality`` metadata)."""


def hold_out(ds: PoseDataset, cfg: TrainConfig, main: bool) -> tuple[Any, Any]:
    """Return (train, validation) indices by ``cfg.val_split``; say how far validation lies from training."""
    from reloc_ros.evaluation import distance_from_path
    from reloc_ros.training.data import split_frames

    train_idx, val_idx = split_frames(ds.poses_n44, cfg.val_fraction, cfg.val_split)
    if main:
        off = distance_from_path(ds.poses_n44[val_idx], ds.poses_n44[train_idx])
        log.info("validation: %d frames, %s; median %.2f m and %.0f deg from the nearest training frame",
                 len(val_idx), SPLIT_WORDS[cfg.val_split], off["median_distance_m"], off["median_view_angle_deg"])
    return train_idx, val_idx


def training_data_summary(ds: PoseDataset, train_idx: Any, val_idx: Any, cfg: TrainConfig) -> dict:
    """Return the ``training_data`` metadata of every method: source, split, how far off the path validation is."""
    from reloc_ros.evaluation import distance_from_path

    pos = ds.poses_n44[:, :3, 3]
    return {"source": ds.source, "frames_train": int(len(train_idx)), "frames_val": int(len(val_idx)),
            "val_split": cfg.val_split,
            "val_distance_from_training": distance_from_path(ds.poses_n44[val_idx], ds.poses_n44[train_idx]),
            "skipped": dict(ds.skipped.counts), "extent_m": (pos.max(0) - pos.min(0)).tolist()}


def assess_model(result: TrainResult, cfg: TrainConfig, train_images: Any, train_poses_n44: Any, val_images: Any,
                 val_poses_n44: Any) -> dict:
    """Judge the best epoch against the mean pose and nearest-frame retrieval; fill ``result.quality`` and log it.

    A weak model (:func:`reloc_ros.evaluation.model_quality`) is said loudly
    here, stored in its metadata by the exporter, and refused by ``reloc-ros
    train`` and the trainer node unless the user allows it (``--allow-weak``).
    """
    from reloc_ros.evaluation import model_quality
    from reloc_ros.modelfile import describe_quality

    result.quality = model_quality(result.val_metrics, result.baseline, train_images, train_poses_n44, val_images,
                                   val_poses_n44, SPLIT_WORDS[cfg.val_split])
    (log.warning if result.quality["weak"] else log.info)(describe_quality(result.quality))
    return result.quality


class Method(Protocol):
    """What a method gives the loop. Built once the data is loaded, on every rank.

    ``net`` is the module whose weights are checkpointed and whose best epoch
    is exported; ``baseline`` the mean-pose baseline on the validation split;
    ``model_args`` the architecture's arguments (recorded in checkpoints).
    """

    net: torch.nn.Module
    baseline: dict
    model_args: dict

    def train_epoch(self, epoch: int, gen: torch.Generator, show_progress: bool) -> dict[str, float]:
        """Train one epoch; return the per-sample means of the loss terms (``loss`` and its parts)."""

    def validate(self) -> dict[str, Any]:
        """Validate the current weights (rank 0 only): at least median_translation_m/median_rotation_deg."""

    def describe_epoch(self, row: dict) -> str:
        """Return extra words for the epoch's log line (loss terms, warnings' figures), may be ''."""

    def state(self) -> dict:
        """Return the checkpoint entries besides the net's weights: optimiser, loss parameters, normalisation, ..."""

    def restore(self, state: dict) -> None:
        """Load what :meth:`state` saved (resume)."""

    def finish(self, best: dict, result: TrainResult) -> None:
        """With the best epoch's weights loaded in ``net``: fill ``result.val_metrics`` and export (rank 0)."""


def fit(run: Run, method: Method, cfg: TrainConfig, progress: bool) -> TrainResult:
    """Run ``method``'s epochs with checkpoints, resume and best-epoch selection; export the best epoch."""
    d, net = run.dist, method.net
    start_epoch, history, best, best_state = 1, [], {"median_translation_m": math.inf}, None
    if run.state is not None:
        net.load_state_dict(run.state["model"])
        method.restore(run.state)
        start_epoch, history, best = run.state["epoch"] + 1, run.state["history"], run.state["best"]
        best_state = run.state["best_model"]
        if d.main:
            log.info("resuming %s after epoch %d of %d", run.ckpt_path, run.state["epoch"], cfg.epochs)
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            row: dict[str, Any] = {"epoch": epoch, **method.train_epoch(epoch, gen, progress and d.main)}
            if d.main:
                row.update(method.validate())
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            if d.main and row["median_translation_m"] < best["median_translation_m"]:
                best = dict(row)
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            if d.main:
                details = method.describe_epoch(row)
                log.info("epoch %d/%d loss %.4f val %.3f m %.2f deg%s (%.1f s)", epoch, cfg.epochs, row["loss"],
                         row["median_translation_m"], row["median_rotation_deg"], f" {details}" if details else "",
                         row["seconds"])
                save_checkpoint(run.ckpt_path, {
                    "format": "reloc_ros.checkpoint", "format_version": CHECKPOINT_FORMAT,
                    "reloc_ros_version": __version__, "config": cfg.to_dict(), "data": run.data_id,
                    "world_size": d.world, "model_args": method.model_args, "epoch": epoch,
                    "model": net.state_dict(), **method.state(), "history": history, "best": best,
                    "best_model": best_state})
            barrier(d)
    except KeyboardInterrupt:
        if d.main:
            log.warning("interrupted during epoch %d; the checkpoint after epoch %d is at %s: continue with "
                        "--resume", epoch, epoch - 1, run.ckpt_path)
        raise
    result = TrainResult(run.out, run.ckpt_path, history, baseline=method.baseline)
    if d.main:
        net.load_state_dict(best_state)
        method.finish(best, result)
    barrier(d)
    return result
