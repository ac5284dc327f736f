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


class CRNN(nn.Module):
    def __init__(self, num_classes: int = len(CHARSET) + 1, height: int = 32, hidden: int = 96) -> None:
        super().__init__()
        if height != 32:
            raise ValueError("this CRNN is built for height 32")
        self.cnn = nn.Sequential(
            *_block(1, 16), nn.MaxPool2d(2, 2),  # 16 x W/2
            *_block(16, 48), nn.MaxPool2d((2, 1)),  # 8 x W/2
            *_block(48, 64), nn.MaxPool2d((2, 1)),  # 4 x W/2
            *_block(64, 96), nn.MaxPool2d((2, 1)),  # 2 x W/2
            *_block(96, 128),
        )
        self.proj = nn.Linear(128 * 2, hidden)
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)  # N, C, 2, T
        n, c, h, t = f.shape
        f = f.permute(0, 3, 1, 2).reshape(n, t, c * h)
        f = torch.relu(self.proj(f))
        f, _ = self.rnn(f)
        return self.fc(self.drop(f))  # N, T, classes


def count_macs(width: int = 160, hidden: int = 96, num_classes: int = len(CHARSET) + 1) -> int:
    """Multiply-adds for one crop (convolutions, projections, LSTM)."""
    t = width // 2
    convs = [(1, 16, 32, width), (16, 48, 16, t), (48, 64, 8, t), (64, 96, 4, t), (96, 128, 2, t)]
    macs = sum(9 * ci * co * h * w for ci, co, h, w in convs)
    macs += t * 256 * hidden  # proj
    macs += 2 * t * 4 * hidden * (hidden + hidden)  # two directions, input and recurrent
    macs += t * 2 * hidden * num_classes
    return macs
