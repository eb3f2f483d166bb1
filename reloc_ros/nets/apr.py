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

"""Absolute pose regression: PoseNet's FC head and LRF-PoseNet's four-LSTM head on a ResNet.

One network, two heads::

    image (B, 3, H, W) -> ResNet backbone -> global average pool (B, C)
        -> Linear(C, feature_dim) + ReLU          PoseNet's 2048-D "fc" embedding
        -> head:
           'fc'   dropout -> Linear -> t (B, 3)    PoseNet (Kendall et al. 2015)
                          -> Linear -> q (B, 4)
           'lstm' reshape 2048 -> 32 x 64, four directional LSTMs (up, down,
                  left, right), concatenate their final hidden states (4 x hidden),
                  dropout -> Linear -> t (B, 3), Linear -> q (B, 4)
                                                   LRF-PoseNet (Qin et al., section 2.2)

PoseNet and LRF-PoseNet use GoogLeNet; reloc_ros uses the ResNets of
:mod:`reloc_ros.nets.backbones` (no torchvision here, and ResNet weights are
what users can download). Everything after the pooled feature follows the papers.

**How the LSTM head reads LRF-PoseNet.** The paper says only: the 2048-D vector
is "resized to a 32x64 matrix", four LSTMs run "in the up, down, left and right
directions", and "these four outputs are connected [concatenated] and passed to
the fully connected layer". What it leaves open, and what is chosen here:

* *Reshape*: row-major (``view(B, 32, 64)``), so row ``i`` holds embedding
  entries ``64 i .. 64 i + 63`` - the only reshape that needs no copy and the
  one PyTorch code (the paper's implementation language) gets by default.
* *Directions*: "down" reads the 32 rows top to bottom (row 0 first) as a
  sequence of 64-D vectors, "up" reads them bottom to top; "right" reads the 64
  columns left to right (column 0 first) as a sequence of 32-D vectors, "left"
  reads them right to left. This is Walch et al. 2017's spatial LSTM layout,
  which LRF-PoseNet cites for the idea.
* *Output of an LSTM*: its final hidden state (after the whole sequence), one
  layer, no peepholes (``nn.LSTM``'s cell). Concatenation order: up, down,
  left, right (the paper's listing order).
* *Hidden size*: not given by the paper; 128 per LSTM, as Walch et al. 2017,
  so the pose regressors see a 512-D vector.
* *Dropout*: the paper does not say; PoseNet's dropout (0.5) is applied to the
  concatenated LSTM output, just before the pose regressors, as on the FC head.
* *Pose layer*: "the fully connected layer" is read as PoseNet's two affine
  regressors (3 for position, 4 for the quaternion), with no extra hidden FC.

**Outputs.** ``forward`` returns ``(t_b3, q_b4)``: ``t`` in the trainer's
*normalised* position units (positions minus the training mean, divided by the
training scale; the exported model undoes it) and ``q`` in ROS order
``(x, y, z, w)``, *not* normalised - PoseNet regresses an unconstrained
4-vector; the losses and the export normalise it.

**Initialisation.** From random weights, a PoseNet head can settle on one
constant pose (GUIDE, section 5). The regressors start where a constant guess
is least harmful and where every image still gets its own prediction: position
bias 0 (the training mean, in normalised units), quaternion bias ``(0, 0, 0, 1)``
(identity, on the canonical ``w >= 0`` hemisphere the targets use, so the
normalisation in the loss is well conditioned from step one), and small
Gaussian weights (std ``0.05 / sqrt(fan_in)``) so the initial spread of
predictions is small but non-zero and every layer receives gradient.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from reloc_ros.nets.backbones import BACKBONE_NAMES, Backbone, build_backbone

HEAD_NAMES: tuple[str, ...] = ("fc", "lstm")
"""Pose heads: ``'fc'`` (PoseNet) and ``'lstm'`` (LRF-PoseNet's four directional LSTMs)."""

LSTM_GRID_ROWS = 32
"""Rows of the matrix the LSTM head reshapes the embedding into (LRF-PoseNet: 32 x 64)."""
LSTM_GRID_COLS = 64
"""Columns of that matrix."""
LSTM_FEATURE_DIM = LSTM_GRID_ROWS * LSTM_GRID_COLS

# The regressors' initial weights are N(0, (gain / sqrt(fan_in))^2): small, so
# the first predictions sit near the biases (mean position, identity rotation;
# the ReLU embedding is all positive, so larger weights add an image-independent
# offset of about gain * rms(feature) that would swamp them), but not zero, so
# predictions differ per image and gradients reach the embedding at step one.
_REGRESSOR_INIT_GAIN = 0.05


@dataclass(frozen=True)
class APRConfig:
    """Architecture of an absolute pose regressor; stored in checkpoints (``to_dict``).

    Attributes:
        backbone: ``'resnet18'``, ``'resnet34'`` or ``'resnet50'``.
        head: ``'fc'`` (PoseNet) or ``'lstm'`` (LRF-PoseNet).
        feature_dim: width of the FC embedding after the pooled backbone
            feature; PoseNet uses 2048, and the LSTM head needs exactly 2048
            (reshaped to 32 x 64).
        dropout: dropout probability before the pose regressors (PoseNet: 0.5).
        lstm_hidden: hidden size of each of the four LSTMs (LRF-PoseNet does
            not give it; 128 is Walch et al. 2017's, the network it builds on).
            Ignored by the ``'fc'`` head.

    """

    backbone: str = "resnet18"
    head: str = "fc"
    feature_dim: int = 2048
    dropout: float = 0.5
    lstm_hidden: int = 128

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(f"unknown backbone '{self.backbone}'; valid backbones: {', '.join(BACKBONE_NAMES)}")
        if self.head not in HEAD_NAMES:
            raise ValueError(f"unknown head '{self.head}'; valid heads: {', '.join(HEAD_NAMES)}")
        if not _is_int(self.feature_dim) or self.feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive integer, got {self.feature_dim!r}")
        if self.head == "lstm" and self.feature_dim != LSTM_FEATURE_DIM:
            raise ValueError(f"feature_dim {self.feature_dim} does not work with the 'lstm' head: it reshapes the "
                             f"embedding to {LSTM_GRID_ROWS}x{LSTM_GRID_COLS}, so feature_dim must be "
                             f"{LSTM_FEATURE_DIM}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not math.isfinite(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")
        if not _is_int(self.lstm_hidden) or self.lstm_hidden < 1:
            raise ValueError(f"lstm_hidden must be a positive integer, got {self.lstm_hidden!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON- and ``torch.save``-friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "APRConfig":
        """Rebuild a config from :meth:`to_dict` output; absent fields take their defaults.

        Raises:
            ValueError: on unknown keys (e.g. a checkpoint of another model
                type) or invalid values.

        """
        if not isinstance(d, Mapping):
            raise ValueError(f"APR config must be a mapping of field -> value, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(f"unknown APR config keys {unknown}; valid keys: {', '.join(known)}")
        return cls(**dict(d))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class DirectionalLSTMs(nn.Module):
    """LRF-PoseNet's four LSTMs reading a 2048-D embedding as a 32 x 64 matrix.

    ``forward(f_b2048)`` returns ``(B, 4 * hidden)``: the final hidden states of
    the up, down, left and right LSTMs, in that order (see the module
    docstring for how each direction reads the matrix).

    Attributes:
        lstm_up, lstm_down: input size 64, run over the 32 rows (bottom to
            top, top to bottom).
        lstm_left, lstm_right: input size 32, run over the 64 columns (right to
            left, left to right).
        out_dim: ``4 * hidden``.

    """

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        # Plain int attributes rather than the module constants: TorchScript
        # cannot read Python globals.
        self.rows = LSTM_GRID_ROWS
        self.cols = LSTM_GRID_COLS
        self.lstm_up = nn.LSTM(LSTM_GRID_COLS, hidden, batch_first=True)
        self.lstm_down = nn.LSTM(LSTM_GRID_COLS, hidden, batch_first=True)
        self.lstm_left = nn.LSTM(LSTM_GRID_ROWS, hidden, batch_first=True)
        self.lstm_right = nn.LSTM(LSTM_GRID_ROWS, hidden, batch_first=True)
        self.out_dim = 4 * hidden

    def forward(self, f_b2048: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 2048)`` embeddings to ``(B, 4 * hidden)`` = [up | down | left | right]."""
        rows_brc = f_b2048.reshape(-1, self.rows, self.cols)  # row-major: row i = f[64 i : 64 i + 64]
        cols_bcr = rows_brc.transpose(1, 2)  # sequence of 64 columns, each 32-D
        # nn.LSTM returns (outputs, (h_n, c_n)); h_n[-1] is the last layer's
        # hidden state after the whole sequence. Flipping the sequence axis
        # gives the reverse direction.
        h_up = self.lstm_up(torch.flip(rows_brc, [1]))[1][0][-1]
        h_down = self.lstm_down(rows_brc)[1][0][-1]
        h_left = self.lstm_left(torch.flip(cols_bcr, [1]))[1][0][-1]
        h_right = self.lstm_right(cols_bcr)[1][0][-1]
        return torch.cat([h_up, h_down, h_left, h_right], dim=1)


class APRNet(nn.Module):
    """Absolute pose regressor: backbone -> 2048-D FC embedding -> PoseNet or LRF-PoseNet head.

    Use :func:`build_apr` to build one (optionally with backbone weights).

    Attributes:
        config: the :class:`APRConfig` it was built from.
        backbone: the :class:`~reloc_ros.nets.backbones.Backbone`.
        embed: ``Linear(backbone.out_channels, feature_dim)``, followed by ReLU.
        reader: ``nn.Identity`` for the ``'fc'`` head, :class:`DirectionalLSTMs`
            for ``'lstm'``.
        fc_t, fc_q: the position (3) and quaternion (4) regressors.

    """

    def __init__(self, config: APRConfig | None = None, backbone: Backbone | None = None) -> None:
        super().__init__()
        config = APRConfig() if config is None else config
        if backbone is None:
            backbone = build_backbone(config.backbone)
        elif backbone.name != config.backbone:
            raise ValueError(f"backbone '{backbone.name}' does not match the config's '{config.backbone}'")
        self.config = config
        self.backbone = backbone
        self.embed = nn.Linear(backbone.out_channels, config.feature_dim)
        self.embed_act = nn.ReLU(inplace=True)
        self.reader: nn.Module
        if config.head == "lstm":
            lstms = DirectionalLSTMs(config.lstm_hidden)
            self.reader = lstms
            head_dim = lstms.out_dim
        else:
            self.reader = nn.Identity()
            head_dim = config.feature_dim
        self.dropout = nn.Dropout(config.dropout)
        self.fc_t = nn.Linear(head_dim, 3)
        self.fc_q = nn.Linear(head_dim, 4)

        # Embedding: He init keeps the ReLU activations at the scale of the
        # pooled features (nn.Linear's default shrinks them by about sqrt(6)).
        nn.init.kaiming_normal_(self.embed.weight, nonlinearity="relu")
        nn.init.zeros_(self.embed.bias)
        std = _REGRESSOR_INIT_GAIN / math.sqrt(head_dim)
        nn.init.normal_(self.fc_t.weight, std=std)
        nn.init.zeros_(self.fc_t.bias)
        nn.init.normal_(self.fc_q.weight, std=std)
        with torch.no_grad():
            self.fc_q.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # identity, (x, y, z, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Regress poses from images.

        Args:
            x: ``(B, 3, H, W)`` float RGB images, ImageNet-normalised.

        Returns:
            ``(t_b3, q_b4)``: positions in normalised units and unnormalised
            quaternions in ``(x, y, z, w)`` order.

        """
        h = self.dropout(self.trunk(x))
        return self.fc_t(h), self.fc_q(h)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Return the feature the dropout and pose regressors act on (the export's MC-dropout split point)."""
        return self.reader(self.embed_act(self.embed(self.backbone(x))))


def build_apr(cfg: APRConfig | None = None, backbone_weights: str | Path | None = None) -> APRNet:
    """Build an :class:`APRNet`, with the backbone randomly initialised or loaded from a file.

    Args:
        cfg: the architecture (defaults: ResNet-18, FC head).
        backbone_weights: optional torchvision-format state_dict of the
            backbone (e.g. ImageNet ``resnet18-f37072fd.pth``), loaded strictly
            (see :func:`reloc_ros.nets.backbones.load_backbone_weights`). The
            head is always freshly initialised.

    Raises:
        ValueError: a weights file that is missing or does not match.

    """
    cfg = APRConfig() if cfg is None else cfg
    return APRNet(cfg, build_backbone(cfg.backbone, backbone_weights))
