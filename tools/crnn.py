"""The plate CRNN (PyTorch): CNN feature extractor -> BiLSTM -> per-column class scores (CTC).

Shared by ``train.py`` and ``export_onnx.py``. Needs the ``train`` extra (torch).
Input: float32 (N, 1, 32, W) normalised grey; output: (N, W/2, classes) logits, class 0 = CTC blank.
The horizontal stride is 2 (not the classic 4) so a 2:1 US plate, only 64 columns wide at
height 32, still gets 32 time steps for up to 8 characters.
"""

from __future__ import annotations

import torch
from torch import nn

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
SPECIALS = "警学挂港澳使领"
CHARSET = DIGITS + LETTERS + PROVINCES + SPECIALS  # index i+1 in the output; 0 is blank


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


BASE_WIDTHS = (16, 48, 64, 96, 128)


class CRNN(nn.Module):
    """``widths``: the five convolutions' channels; ``hidden``: the projection and each LSTM
    direction; ``layers``: BiLSTM layers. A layer after the first is residual (its output goes
    through ``mix`` and is added to its input), so a grown network can start as the one it grew
    from (``tools/grow.py``). The defaults are the shipped model; their state-dict keys do not change."""

    def __init__(self, num_classes: int = len(CHARSET) + 1, height: int = 32, hidden: int = 96,
                 widths: tuple[int, ...] = BASE_WIDTHS, layers: int = 1) -> None:
        super().__init__()
        if height != 32:
            raise ValueError("this CRNN is built for height 32")
        if len(widths) != 5 or layers < 1:
            raise ValueError(f"need 5 convolution widths and at least one LSTM layer, not {widths}, {layers}")
        w = [int(c) for c in widths]
        self.arch = {"hidden": int(hidden), "widths": w, "layers": int(layers)}
        self.cnn = nn.Sequential(
            *_block(1, w[0]), nn.MaxPool2d(2, 2),  # 16 x W/2
            *_block(w[0], w[1]), nn.MaxPool2d((2, 1)),  # 8 x W/2
            *_block(w[1], w[2]), nn.MaxPool2d((2, 1)),  # 4 x W/2
            *_block(w[2], w[3]), nn.MaxPool2d((2, 1)),  # 2 x W/2
            *_block(w[3], w[4]),
        )
        self.proj = nn.Linear(w[4] * 2, hidden)
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.extra = nn.ModuleList(nn.LSTM(2 * hidden, hidden, batch_first=True, bidirectional=True)
                                   for _ in range(layers - 1))
        self.mix = nn.ModuleList(nn.Linear(2 * hidden, 2 * hidden) for _ in range(layers - 1))
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)  # N, C, 2, T
        n, c, h, t = f.shape
        f = f.permute(0, 3, 1, 2).reshape(n, t, c * h)
        f = torch.relu(self.proj(f))
        f, _ = self.rnn(f)
        for rnn, mix in zip(self.extra, self.mix, strict=True):
            g, _ = rnn(f)
            f = f + mix(g)
        return self.fc(self.drop(f))  # N, T, classes


def from_checkpoint(ck: dict) -> CRNN:
    """The network a train.py checkpoint holds (its architecture, if it names one), weights loaded."""
    model = CRNN(num_classes=len(ck.get("charset", CHARSET)) + 1, **ck.get("arch", {}))
    model.load_state_dict(ck["model"])
    return model


def describe(arch: dict | None = None) -> str:
    a = {"hidden": 96, "widths": list(BASE_WIDTHS), "layers": 1, **(arch or {})}
    rnn = f"BiLSTM {a['hidden']}" + (f" x {a['layers']} (residual)" if a["layers"] > 1 else "")
    return (f"CRNN: 5x(conv3x3+BN+ReLU) {'-'.join(map(str, a['widths']))} stride (16,2) -> "
            f"linear {a['hidden']} -> {rnn} -> linear; CTC")


def count_macs(width: int = 160, hidden: int = 96, num_classes: int = len(CHARSET) + 1,
               widths: tuple[int, ...] = BASE_WIDTHS, layers: int = 1) -> int:
    """Multiply-adds for one crop (convolutions, projections, LSTM)."""
    t = width // 2
    w = [1, *widths]
    sizes = [(32, width), (16, t), (8, t), (4, t), (2, t)]
    macs = sum(9 * w[k] * w[k + 1] * h * x for k, (h, x) in enumerate(sizes))
    macs += t * 2 * w[5] * hidden  # proj
    macs += 2 * t * 4 * hidden * (hidden + hidden)  # two directions, input and recurrent
    macs += (layers - 1) * (2 * t * 4 * hidden * (2 * hidden + hidden) + t * (2 * hidden) ** 2)
    macs += t * 2 * hidden * num_classes
    return macs
