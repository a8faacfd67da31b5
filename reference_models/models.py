"""The paper's reference models, as plain ``torch.nn.Module``s with ReLU modules.

Every nonlinearity is its own ``nn.ReLU`` module (a bottleneck block reuses one, as
torchvision's does), so :class:`directionkit.adapters.torch.TorchAdapter` finds every
site, and plain ``nn.Sequential`` MLPs take directionkit's fast paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from directionkit._utils.validation import check_int, parameter_error

__all__ = ["MLP", "Bottleneck", "ConvNet", "ResNet", "resnet50"]

PAPER_CONV_CHANNELS = (64, 64, 128, 128, 128, 256, 256, 256, 512, 512, 512)
PAPER_CONV_STRIDES = (1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1)


def MLP(
    in_features: int,
    hidden: Sequence[int] = (512, 512),
    n_classes: int = 10,
    dropout: float = 0.0,
) -> nn.Sequential:
    """The paper's MLP: ``Flatten``, then ``Linear -> ReLU (-> Dropout)`` per hidden layer.

    Parameters
    ----------
    in_features : int
        Input size after flattening (784 for 28x28 images).
    hidden : sequence of int
        Hidden widths; the paper uses two layers of 128, 512 or 2048.
    n_classes : int
    dropout : float
        Dropout probability after each ReLU (the paper's 0.1-0.3), 0 for none.

    Examples
    --------
    >>> net = MLP(784, hidden=(128, 128), n_classes=10)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    check_int(in_features, "in_features", "MLP", minimum=1)
    check_int(n_classes, "n_classes", "MLP", minimum=2)
    if not 0.0 <= dropout < 1.0:
        raise parameter_error("dropout", "MLP", "a float in [0, 1)", dropout)
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, check_int(size, "hidden", "MLP", minimum=1)), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


class ConvNet(nn.Sequential):
    """The paper's 11-layer network of 3x3 convolutions, for 28x28x1 and 32x32x3 inputs.

    Each layer is ``Conv2d(3x3) (-> BatchNorm2d) -> ReLU``; then global average pooling
    and a linear read-out.

    Parameters
    ----------
    in_channels, n_classes : int
    channels, strides : sequences of int, same length
        Per layer; defaults are the paper's.
    batch_norm : bool
    width : float
        Multiplies every channel count (e.g. 0.25 for CPU-sized runs).

    Examples
    --------
    >>> net = ConvNet(3, 10, width=0.125)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        channels: Sequence[int] = PAPER_CONV_CHANNELS,
        strides: Sequence[int] = PAPER_CONV_STRIDES,
        batch_norm: bool = True,
        width: float = 1.0,
    ) -> None:
        if len(channels) != len(strides) or not channels:
            raise parameter_error(
                "channels, strides", "ConvNet", "non-empty sequences of the same length",
                (tuple(channels), tuple(strides)),
            )  # fmt: skip
        if not width > 0:
            raise parameter_error("width", "ConvNet", "a float > 0", width)
        layers: list[nn.Module] = []
        previous = check_int(in_channels, "in_channels", "ConvNet", minimum=1)
        for count, stride in zip(channels, strides, strict=True):
            out = max(1, round(count * width))
            layers.append(
                nn.Conv2d(previous, out, 3, stride=stride, padding=1, bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            previous = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(previous, n_classes)]
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """ResNet bottleneck block: 1x1 -> 3x3 -> 1x1 convolutions, BatchNorm, one reused ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """A bottleneck ResNet (the paper's ImageNet model is :func:`resnet50`).

    Parameters
    ----------
    blocks : sequence of int
        Bottleneck blocks per stage; ``(3, 4, 6, 3)`` is ResNet-50.
    n_classes, in_channels : int
    base : int
        Planes of the first stage (64 in ResNet-50; smaller for tests).
    small_input : bool
        Use a 3x3 stem without max-pooling (for 32x32 inputs) instead of the 7x7/2 stem.

    Examples
    --------
    >>> net = ResNet(blocks=(1, 1), n_classes=10, base=8, small_input=True)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        blocks: Sequence[int] = (3, 4, 6, 3),
        n_classes: int = 1000,
        in_channels: int = 3,
        base: int = 64,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        if small_input:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, base, 3, padding=1, bias=False), nn.BatchNorm2d(base),
                nn.ReLU(),
            )  # fmt: skip
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, base, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(base), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
            )  # fmt: skip
        stages: list[nn.Module] = []
        width = base
        for index, count in enumerate(blocks):
            planes = base * 2**index
            stage = []
            for block in range(check_int(count, "blocks", "ResNet", minimum=1)):
                stride = 2 if index > 0 and block == 0 else 1
                stage.append(Bottleneck(width, planes, stride))
                width = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def resnet50(n_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3), base width 64, 7x7 stem."""
    return ResNet((3, 4, 6, 3), n_classes, in_channels)
