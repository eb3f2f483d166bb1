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

"""The options of a training run, shared by every method's trainer, and what a run returns.

:class:`TrainConfig` holds every option of ``reloc-ros train`` and of the
trainer node (their declarations, with help texts, are
:mod:`reloc_ros.training.options`); :meth:`TrainConfig.resolved` fills in the
chosen model's defaults (:data:`MODELS`) and checks every value, with errors
that name the option, the bad value and what is valid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
import math
from pathlib import Path

# Each model's defaults. For the APRs, head and preprocessing stay overridable
# so their effects can be measured separately (the LRF-PoseNet ablation).
# CamNet (Ding et al., section 4.2): ResNet-34, images resized to the input,
# SGD with momentum 0.9, weight decay 1e-4 and the 'poly' schedule from 0.01.
MODELS = {
    "posenet": {"head": "fc", "preprocessing": "crop", "backbone": "resnet18", "lr": 5e-4, "weight_decay": 0.0,
                "optimizer": "adam"},
    "lrf-posenet": {"head": "lstm", "preprocessing": "resize", "backbone": "resnet18", "lr": 5e-4,
                    "weight_decay": 0.0, "optimizer": "adam"},
    "camnet": {"head": "camnet", "preprocessing": "resize", "backbone": "resnet34", "lr": 0.01,
               "weight_decay": 1e-4, "optimizer": "sgd"},
    # PMNet (Lin et al., section 4.1): Adam at 1e-4, whole image (its NeRF-P renders the whole view).
    "pmnet": {"head": "fc", "preprocessing": "resize", "backbone": "resnet18", "lr": 1e-4, "weight_decay": 0.0,
              "optimizer": "adam"},
}
OPTIMIZERS = ("adam", "sgd")
"""adam: Adam (beta 0.9, 0.999), constant rate; sgd: momentum 0.9 with the 'poly' schedule (power 0.9)."""
SIMILARITIES = ("auto", "frustum", "orb")
"""CamNet's pair overlap: frustum from depth (eq. 2), ORB similarity (eq. 3), or auto (frustum with depth)."""
LOSSES = ("beta", "learned", "geometric")
VAL_SPLITS = ("spatial", "time")
"""How validation frames are held out of the mapping run: ``spatial`` holds out
regions of pose space (place and viewing direction, every pass through them;
:func:`reloc_ros.training.data.split_off_path`), ``time`` contiguous time
blocks (:func:`reloc_ros.training.data.split_time_blocks`)."""
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result (checkpoints carry it)."""

    model: str = "posenet"
    backbone: str | None = None  # default: the model's
    head: str | None = None  # default: the model's
    preprocessing: str | None = None  # default: the model's
    input_size: tuple[int, int] = (224, 224)
    loss: str = "beta"  # APRs only
    beta: float | None = None  # default: the loss's own
    epochs: int = 30
    batch_size: int = 32  # CamNet: anchors per batch (each brings 3 partners and up to 3 PRP references)
    lr: float | None = None  # default: the model's (LRF-PoseNet: Adam 5e-4; CamNet: SGD 0.01)
    weight_decay: float | None = None  # default: the model's
    dropout: float = 0.5  # APRs only
    val_fraction: float = 0.15
    val_split: str = "spatial"  # VAL_SPLITS of training.data: spatial regions or time blocks
    augment: bool = True
    seed: int = 0
    backbone_weights: str | None = None
    min_frames: int = 20
    similarity: str = "auto"  # CamNet only: SIMILARITIES
    keyframe_distance: float = 0.05  # CamNet only: database key frames at least this zeta apart (m + angle/pi)
    retrieval_k: int = 3  # CamNet only: K of section 3.4
    optimizer: str | None = None  # default: the model's (OPTIMIZERS)
    pmnet_losses: str = "pose,image,posemap,rvs"  # PMNet only: terms of eq. 2 (Table 5 ablation)
    rvs_translation: float = 0.2  # PMNet only: random view synthesis, metres per axis (paper, indoors)
    rvs_rotation: float = 10.0  # PMNet only: degrees per axis (paper, indoors)
    nerf_steps: int = 2000  # PMNet only: NeRF-P rendering-branch steps (stage 1)
    nerf_pose_steps: int = 500  # PMNet only: pose-branch steps (stage 2, rendering frozen)
    nerf_resolution: int = 128  # PMNet only: finest grid cells along the scene's longest side
    nerf_rays: int = 4096  # PMNet only: rays per NeRF-P step

    def resolved(self) -> "TrainConfig":
        """Fill the model's defaults in and check every value."""
        if self.model not in MODELS:
            raise ValueError(f"model '{self.model}' is not one of {', '.join(MODELS)}")
        d = MODELS[self.model]
        cfg = replace(self, head=self.head or d["head"], preprocessing=self.preprocessing or d["preprocessing"],
                      backbone=self.backbone or d["backbone"], lr=d["lr"] if self.lr is None else self.lr,
                      weight_decay=d["weight_decay"] if self.weight_decay is None else self.weight_decay,
                      optimizer=self.optimizer or d["optimizer"],
                      input_size=tuple(int(v) for v in self.input_size))
        if (cfg.head == "camnet") != (cfg.model == "camnet"):
            valid = "camnet" if cfg.model == "camnet" else "fc, lstm"
            raise ValueError(f"head '{cfg.head}' does not fit model '{cfg.model}'; valid: {valid}")
        if cfg.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer '{cfg.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
        if cfg.model == "pmnet":
            _check_pmnet(cfg)
        if cfg.optimizer != "adam" and cfg.model != "camnet":
            raise ValueError(f"the APR trainer uses Adam, as PoseNet; optimizer '{cfg.optimizer}' is for camnet")
        if cfg.val_split not in VAL_SPLITS:
            raise ValueError(f"validation split '{cfg.val_split}' is not one of {', '.join(VAL_SPLITS)}")
        if cfg.similarity not in SIMILARITIES:
            raise ValueError(f"similarity '{cfg.similarity}' is not one of {', '.join(SIMILARITIES)}")
        if not (math.isfinite(cfg.keyframe_distance) and cfg.keyframe_distance >= 0):
            raise ValueError(f"keyframe_distance must be >= 0 (metres + angle/pi), got {cfg.keyframe_distance}")
        if cfg.retrieval_k < 1:
            raise ValueError(f"retrieval_k must be >= 1, got {cfg.retrieval_k}")
        if cfg.weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {cfg.weight_decay}")
        if cfg.loss not in LOSSES:
            raise ValueError(f"loss '{cfg.loss}' is not one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "min_frames"):
            if getattr(cfg, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
        if not cfg.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {cfg.lr}")
        if cfg.batch_size < 2:
            raise ValueError("batch size must be >= 2 (batch normalisation needs more than one image)")
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}; valid: "
                             f"{', '.join(sorted(known))}")
        d = dict(d)
        if "input_size" in d:
            d["input_size"] = tuple(d["input_size"])
        return cls(**d)


def _check_pmnet(cfg: "TrainConfig") -> None:
    from reloc_ros.nets.nerfp import MAX_GRID_RESOLUTION
    from reloc_ros.nets.pmnet import parse_losses

    if cfg.head != "fc":
        raise ValueError(f"head '{cfg.head}' does not fit model 'pmnet': its pose estimator is PoseNet's fc head")
    losses = parse_losses(cfg.pmnet_losses)
    if "pose" not in losses and "rvs" not in losses:
        raise ValueError(f"pmnet_losses '{cfg.pmnet_losses}' has no supervised term: keep 'pose' or 'rvs' (image "
                         "and posemap alone are the unlabelled alignment of 'reloc-ros align')")
    for name in ("rvs_translation", "rvs_rotation"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be >= 0, got {v}")
    for name in ("nerf_steps", "nerf_pose_steps", "nerf_rays"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if not 8 <= cfg.nerf_resolution <= MAX_GRID_RESOLUTION:
        raise ValueError(f"nerf_resolution must be in [8, {MAX_GRID_RESOLUTION}] cells, got {cfg.nerf_resolution}")


@dataclass
class TrainResult:
    """What a training run produced: the model file, its checkpoint, the per-epoch history and figures."""

    model_path: Path
    checkpoint_path: Path
    history: list[dict] = field(default_factory=list)
    val_metrics: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)  # evaluation.model_quality: is the model weak?
