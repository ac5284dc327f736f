"""Quantisation-aware fine-tuning for the CRNN: train against the rounding the INT8 model will do.

``tools/quantize.py`` quantises convs 2-5 and the projection statically: per-output-channel
symmetric 7-bit weights (``reduce_range``) and per-tensor symmetric int8 activations at their
inputs. A network trained only in float has many crops near a decision boundary, and that
rounding flips some of them (the FP32 and INT8 1.2.0 models disagreed on about 4 % of crops).
``prepare`` makes the same layers see the same rounding during training (fake quantisation with a
straight-through gradient), so the weights settle where rounding does not change the reading.

Batch-norm is folded into each conv on export; per-channel symmetric rounding commutes with that
per-channel scaling, so rounding the unfolded weights here is exactly what INT8 will do to the
folded ones. BN statistics are frozen (``freeze_bn``) so that relation does not move under us.
``clean_state_dict`` turns the fake-quantised model back into a plain CRNN checkpoint, which
``export_onnx.py`` and ``quantize.py`` take as before.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

# the layers quantize.py quantises (the first conv and the classifier stay float)
QUANTISED = ("cnn.4", "cnn.8", "cnn.12", "cnn.16", "proj")
WEIGHT_QMIN, WEIGHT_QMAX = -64, 63  # reduce_range: 7-bit weights
ACT_QMIN, ACT_QMAX = -128, 127


class _WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric rounding of a weight to 7 bits."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        absmax = w.detach().abs().amax(dim=tuple(range(1, w.dim()))).clamp_min(1e-8)
        scale = (absmax / ((WEIGHT_QMAX - WEIGHT_QMIN) / 2)).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, WEIGHT_QMIN, WEIGHT_QMAX)


class _ActFakeQuant(nn.Module):
    """Per-tensor symmetric int8 rounding of a layer's input; the range follows the largest
    magnitude seen (moving average of batch maxima, like a calibration pass would find)."""

    def __init__(self, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("absmax", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            m = x.detach().abs().max()
            with torch.no_grad():
                self.absmax.copy_(m if self.absmax == 0 else self.absmax * (1 - self.momentum) + m * self.momentum)
        scale = float(self.absmax.clamp_min(1e-8)) / ((ACT_QMAX - ACT_QMIN) / 2)
        return torch.fake_quantize_per_tensor_affine(x, scale, 0, ACT_QMIN, ACT_QMAX)


def _act_hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (module.act_fq(args[0]),) + tuple(args[1:])


def prepare(model: nn.Module) -> nn.Module:
    """Add fake quantisation to the layers INT8 will quantise (in place)."""
    mods = dict(model.named_modules())
    for name in QUANTISED:
        m = mods[name]
        parametrize.register_parametrization(m, "weight", _WeightFakeQuant())
        m.act_fq = _ActFakeQuant()
        m.register_forward_pre_hook(_act_hook)
    return model


def freeze_bn(model: nn.Module) -> None:
    """Batch-norm layers use (and keep) their running statistics; call after ``model.train()``."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def clean_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The float weights under a prepared model, keyed as in a plain CRNN."""
    out = {}
    for k, v in model.state_dict().items():
        if ".act_fq." in k:
            continue
        out[k.replace(".parametrizations.weight.original", ".weight")] = v.detach().cpu()
    return out
