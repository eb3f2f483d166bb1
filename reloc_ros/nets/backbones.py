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

"""ResNet-18/34/50 feature backbones whose state_dict keys are torchvision's.

torchvision does not import with the CPU torch this project pins, so the
networks are written here in plain torch. They follow torchvision's
``resnet18`` / ``resnet34`` / ``resnet50`` exactly: the same module names (so
``state_dict()`` keys are identical, in the same order), the same tensor shapes,
ResNet v1.5 bottlenecks (stride on the 3x3 conv), a 1x1 conv + BN shortcut
(``layerN.0.downsample.0`` / ``.1``) where a stage changes width or stride, and
the same initialisation (Kaiming-normal, fan-out, for every conv; BatchNorm
weight 1 and bias 0; the classifier keeps ``nn.Linear``'s default init).
Modules are even created in torchvision's order, so under the same seed the
random weights are the same numbers.

**Weights.** Random initialisation is the default: no ImageNet weights ship
with reloc_ros and none are downloaded (the robots and CI machines this runs on
are often offline). A torchvision ImageNet checkpoint that a user downloaded
(``resnet18-f37072fd.pth``, ``resnet50-0676ba61.pth``, ...; the ``.pth`` holds a
plain state_dict) loads with ``build_backbone(name, weights=path)``. Pretrained
weights are what PoseNet-style regressors were designed around: training from
them converges several times faster and generalises much better to real
images, because the low-level filters need not be learnt from a few hundred
frames of one scene. From random initialisation expect slower training and
worse accuracy on real data; on the project's small synthetic scenes it is
enough.

**Strict loading.** Every key of the file must match a key of the model, by
name and shape; anything else raises ``ValueError`` naming the file and the
first missing / unexpected / mis-shaped keys, never a silent partial load. Two
common wrappers are unwrapped first: a checkpoint dict ``{'state_dict': sd,
...}`` and the ``module.`` prefix that ``DataParallel`` /
``DistributedDataParallel`` put on every key. BatchNorm
``num_batches_tracked`` counters may be absent (checkpoints saved before
PyTorch 0.4 lack them; BatchNorm fills them in) - they are bookkeeping, not
weights.

**The classifier.** ``fc`` (1000 ImageNet classes) is kept as a module so a
torchvision file loads strictly and ``state_dict()`` round-trips to the same
keys, but ``forward`` never uses it. Its parameters are frozen
(``requires_grad=False``) so optimisers skip them and DistributedDataParallel
does not complain about parameters that receive no gradient. ``classify``
runs it, e.g. to check that imported ImageNet weights are sane.

Inputs are RGB images ``(B, 3, H, W)`` scaled to [0, 1] and normalised with
``IMAGENET_MEAN`` / ``IMAGENET_STD`` (the normalisation torchvision's weights
were trained with). The output stride is 32: a 96x128 image gives a 3x4 map.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet, for images scaled to [0, 1]."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet, for images scaled to [0, 1]."""

IMAGENET_NUM_CLASSES = 1000

# Cap on how many offending keys an error message lists per kind.
_MAX_KEYS_IN_ERROR = 6


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut; ResNet-18/34."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        # Registration order (conv1, bn1, conv2, bn2, downsample) fixes the
        # state_dict key order; it is torchvision's.
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride: ResNet v1.5), 1x1 expand by 4; ResNet-50."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = _conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual bottleneck block."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


# name -> (block class, blocks per stage); torchvision's table.
_ARCHS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}

BACKBONE_NAMES: tuple[str, ...] = tuple(_ARCHS)
"""Names accepted by :func:`build_backbone`."""


class Backbone(nn.Module):
    """A torchvision-compatible ResNet used as an image feature extractor.

    Attributes:
        name: ``'resnet18'``, ``'resnet34'`` or ``'resnet50'``.
        out_channels: channels of the last stage (512 or 2048), the width of
            ``forward`` / ``forward_features`` outputs.
        level_channels: channels of the four stage outputs of ``forward_levels``.
        level_strides: their strides w.r.t. the input (4, 8, 16, 32).

    """

    level_strides: tuple[int, int, int, int] = (4, 8, 16, 32)

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in _ARCHS:
            raise ValueError(f"unknown backbone '{name}'; valid names: {', '.join(BACKBONE_NAMES)}")
        block, blocks_per_stage = _ARCHS[name]
        self.name = name
        self._in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_stage(block, 64, blocks_per_stage[0], stride=1)
        self.layer2 = self._make_stage(block, 128, blocks_per_stage[1], stride=2)
        self.layer3 = self._make_stage(block, 256, blocks_per_stage[2], stride=2)
        self.layer4 = self._make_stage(block, 512, blocks_per_stage[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_channels: int = 512 * block.expansion
        self.level_channels: tuple[int, int, int, int] = tuple(  # type: ignore[assignment]
            p * block.expansion for p in (64, 128, 256, 512))
        # ImageNet classifier: kept only so torchvision checkpoints load
        # strictly; never used by forward (see the module docstring).
        self.fc = nn.Linear(self.out_channels, IMAGENET_NUM_CLASSES)
        del self._in_ch

        # Skipped on the meta device (shape-only models; normal_ is slow there).
        for m in () if self.conv1.weight.is_meta else self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1.0)
                nn.init.constant_(m.bias, 0.0)
        self.fc.requires_grad_(False)

    def _make_stage(self, block: type[BasicBlock] | type[Bottleneck], planes: int, n_blocks: int,
                    stride: int) -> nn.Sequential:
        out_ch = planes * block.expansion
        downsample = None
        # The projection shortcut is built before its block, as torchvision
        # does, so both consume the random stream in the same order.
        if stride != 1 or self._in_ch != out_ch:
            downsample = nn.Sequential(_conv1x1(self._in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        blocks: list[nn.Module] = [block(self._in_ch, planes, stride, downsample)]
        self._in_ch = out_ch
        blocks.extend(block(out_ch, planes) for _ in range(1, n_blocks))
        return nn.Sequential(*blocks)

    @torch.jit.export
    def forward_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the outputs of the four stages (strides 4, 8, 16, 32).

        Args:
            x: ``(B, 3, H, W)`` ImageNet-normalised RGB images.

        Returns:
            ``[c2, c3, c4, c5]`` with ``level_channels`` channels each, for
            multi-level feature fusion.

        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 3, H, W)`` images to the last stage's ``(B, out_channels, H/32, W/32)`` map."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 3, H, W)`` images to ``(B, out_channels)`` globally average-pooled features."""
        return torch.flatten(self.avgpool(self.forward_features(x)), 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Return ImageNet logits ``(B, 1000)`` through ``fc``; meaningful only with ImageNet weights loaded."""
        return self.fc(self.forward(x))

    def load_weights(self, path: str | Path) -> None:
        """Load a torchvision-format state_dict file strictly; see :func:`load_backbone_weights`."""
        load_backbone_weights(self, path)


def build_backbone(name: str, weights: str | Path | None = None) -> Backbone:
    """Build ResNet ``name`` (one of :data:`BACKBONE_NAMES`), randomly initialised or from ``weights``.

    Args:
        name: ``'resnet18'``, ``'resnet34'`` or ``'resnet50'``.
        weights: optional path to a torchvision state_dict file (e.g. the
            ImageNet ``resnet18-f37072fd.pth``) or to a state_dict saved from a
            :class:`Backbone`; loaded strictly.

    Raises:
        ValueError: unknown ``name``, or a weights file that is missing,
            unreadable or does not match the architecture.

    """
    if name not in _ARCHS:
        raise ValueError(f"unknown backbone '{name}'; valid names: {', '.join(BACKBONE_NAMES)}")
    model = Backbone(name)
    if weights is not None:
        load_backbone_weights(model, weights)
    return model


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Return a plain ``{key: tensor}`` dict from a loaded file, unwrapping the two common wrappers."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"backbone weights '{path}' hold a {type(obj).__name__}, not a state_dict "
                         "(a dict of parameter name -> tensor)")
    non_tensors = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if non_tensors or not obj:
        what = f"non-tensor entries {non_tensors[:_MAX_KEYS_IN_ERROR]}" if non_tensors else "no entries"
        raise ValueError(f"backbone weights '{path}' are not a state_dict: {what}")
    # A fresh dict without ``_metadata``: BatchNorm then treats the file as
    # versionless and fills in absent num_batches_tracked counters.
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _compare(expected: Mapping[str, torch.Size], state: Mapping[str, torch.Tensor]
             ) -> tuple[list[str], list[str], list[str]]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``expected`` shapes."""
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(v.shape)} vs {tuple(expected[k])}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k])]
    return missing, unexpected, misshaped


def _expected_shapes(name: str) -> dict[str, torch.Size]:
    # Meta tensors: the architecture's keys and shapes without allocating weights.
    with torch.device("meta"):
        model = Backbone(name)
    return {k: v.shape for k, v in model.state_dict().items()}


def _n_weight_keys(name: str) -> int:
    """State_dict entries of ``name`` without num_batches_tracked, counted from the layout table.

    Each conv has a weight (1 key) and is followed by a BatchNorm (weight, bias,
    running mean and var: 4 keys); every stage but layer1 of a BasicBlock ResNet
    (and all four of a Bottleneck one) opens with a projection shortcut; fc adds 2.
    """
    block, counts = _ARCHS[name]
    convs_per_block = 3 if block is Bottleneck else 2
    n_shortcuts = 4 if block is Bottleneck else 3
    return 5 * (1 + convs_per_block * sum(counts) + n_shortcuts) + 2


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_IN_ERROR])
    return shown + (f", ... ({len(keys) - _MAX_KEYS_IN_ERROR} more)" if len(keys) > _MAX_KEYS_IN_ERROR else "")


def load_backbone_weights(model: Backbone, path: str | Path) -> None:
    """Load a state_dict file into ``model`` strictly (all keys, by name and shape).

    The file is read with ``torch.load(..., map_location='cpu', weights_only=True)``
    (no arbitrary code runs). ``{'state_dict': sd}`` checkpoints and
    ``module.``-prefixed keys (DataParallel) are unwrapped; absent BatchNorm
    ``num_batches_tracked`` counters are tolerated. Tensors are copied into the
    model's parameters, keeping the model's dtype and device.

    Raises:
        ValueError: naming ``path``, if the file is missing or unreadable, is
            not a state_dict, or has missing, unexpected or mis-shaped keys (the
            first few of each are listed, and the architecture the file does
            match, if it is another known ResNet).

    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"backbone weights '{path}' do not exist (no ImageNet weights ship with reloc_ros; "
                         "pass a torchvision state_dict .pth you downloaded, or no weights)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files (pickle, zip, EOF, runtime)
        raise ValueError(f"backbone weights '{path}' could not be read as a torch state_dict file "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    state = _unwrap_state_dict(obj, path)

    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing, unexpected, misshaped = _compare(expected, state)
    if missing or unexpected or misshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_first(unexpected)}")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped keys (file vs model): {_first(misshaped)}")
        hint = ""
        n_weights = sum(not k.endswith(".num_batches_tracked") for k in state)
        for other in BACKBONE_NAMES:
            # The key count rules out most candidates before building any model.
            if other != model.name and n_weights == _n_weight_keys(other) \
                    and not any(_compare(_expected_shapes(other), state)):
                hint = f"; the file looks like a {other} state_dict"
                break
        raise ValueError(f"backbone weights '{path}' do not match {model.name}: " + "; ".join(parts) + hint)
    # strict=True again as a backstop; the check above already guarantees it passes.
    model.load_state_dict(state, strict=True)
    logger.info("loaded %s weights from %s (%d tensors)", model.name, path, len(state))
