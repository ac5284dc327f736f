"""The whole model recipe on a tiny scale: synthetic shard -> train -> export -> INT8 -> runtime."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_ocr.config import RecognizerConfig
from edge_ocr.stages import load_recognizer

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> str:
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.mark.needs_torch
def test_train_export_quantise_and_load(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    run("-m", "tools.synth_mix", str(shards), "--shards", "1", "--count", "48", "--seed", "5")
    out = tmp_path / "run"
    log = run("-m", "tools.train", "--shards", str(shards), "--out", str(out), "--steps", "40",
              "--batch", "16", "--log-every", "10", "--eval-every", "40", "--threads", "2")
    losses = [float(x) for x in re.findall(r"loss ([0-9.]+)", log)]
    assert len(losses) == 4
    assert losses[-1] < 0.5 * losses[0], losses  # it learns something
    assert (out / "last.pt").is_file()

    fp32 = tmp_path / "m_fp32.onnx"
    msg = run("-m", "tools.export_onnx", str(out / "last.pt"), str(fp32), "--version", "0.0.1")
    diff = float(re.search(r"max \|torch - onnxruntime\| = ([0-9.e+-]+)", msg).group(1))
    assert diff < 1e-3
    # quantize.py runs the float 2x2 pool as four strided slices: the same numbers, faster
    import onnxruntime as ort

    from tools.quantize import pools_as_slices

    sliced = onnx.load(str(fp32))
    assert pools_as_slices(sliced) == 1
    assert "MaxPool" in {n.op_type for n in sliced.graph.node}  # the 2x1 pools are left alone
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 96)).astype(np.float32)
    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    b = ort.InferenceSession(sliced.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.array_equal(a, b)

    int8 = tmp_path / "m_int8.onnx"
    run("-m", "tools.quantize", str(fp32), str(int8), "--calib-synth", "32")
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert "QuantizeLinear" in ops and "DynamicQuantizeLSTM" in ops  # convs static, LSTM dynamic int8
    assert "Slice" in ops and "Max" in ops

    for path in (fp32, int8):
        rec = load_recognizer(RecognizerConfig(model=str(path)))
        assert rec.info.version == "0.0.1"
        assert rec.info.spec.height == 32
        readings = rec.recognize([np.full((40, 120, 3), 200, np.uint8), np.zeros((24, 94), np.uint8)])
        assert len(readings) == 2
        for r in readings:
            assert set(r.text) <= set(rec.charset)
            assert 0.0 <= r.confidence <= 1.0
            assert len(r.char_confidences) == len(r.text)


@pytest.mark.needs_torch
def test_quantisation_aware_fine_tuning_rounds_like_int8_and_saves_a_plain_checkpoint(tmp_path: Path) -> None:
    import torch

    from tools import qat
    from tools.crnn import CRNN

    torch.manual_seed(0)
    model = qat.prepare(CRNN())
    convs = dict(model.named_modules())
    for name in qat.QUANTISED:  # the weights the forward pass uses are 7-bit per output channel
        m = convs[name]
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        step = m.parametrizations.weight.original.detach().reshape(w.shape).abs().amax(1, keepdim=True) / 63.5
        levels = w / step
        assert torch.allclose(levels, levels.round(), atol=1e-3)
        assert int(levels.round().abs().max()) <= 64
    x = torch.randn(4, 1, 32, 96)
    model.train()
    qat.freeze_bn(model)
    model(x)  # the activation ranges are observed in training mode
    assert all(float(convs[n].act_fq.absmax) > 0 for n in qat.QUANTISED)
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    plain = CRNN()
    plain.load_state_dict(qat.clean_state_dict(model))  # strict: exactly the keys of a plain CRNN
    # the checkpoint keeps the float weights: rounding is applied on the fly, not baked in
    assert not torch.equal(plain.cnn[4].weight, convs["cnn.4"].weight)
    assert torch.equal(plain.cnn[4].weight, convs["cnn.4"].parametrizations.weight.original)

    shards = tmp_path / "shards"
    run("-m", "tools.synth_mix", str(shards), "--shards", "1", "--count", "32", "--seed", "6")
    init = tmp_path / "init.pt"
    torch.save({"model": CRNN().state_dict()}, init)
    out = tmp_path / "qat"
    log = run("-m", "tools.train", "--shards", str(shards), "--out", str(out), "--steps", "10", "--qat",
              "--init", str(init), "--batch", "8", "--lr", "1e-4", "--log-every", "5", "--eval-every", "10",
              "--threads", "2")
    assert len(re.findall(r"loss ([0-9.]+)", log)) == 2
    fp32 = tmp_path / "qat.onnx"
    msg = run("-m", "tools.export_onnx", str(out / "last.pt"), str(fp32), "--version", "0.0.2")
    assert float(re.search(r"max \|torch - onnxruntime\| = ([0-9.e+-]+)", msg).group(1)) < 1e-3
    assert load_recognizer(RecognizerConfig(model=str(fp32))).info.version == "0.0.2"


def test_evaluate_counts_exact_plates_errors_and_confusions(tmp_path: Path) -> None:
    import csv
    import json

    import cv2

    from tools import make_demo_video

    model = ROOT / "models" / "plate_crnn_int8.onnx"
    rec = load_recognizer(RecognizerConfig(model=str(model)))
    plates = [("7ABC123", "us"), ("KA4521", "us"), ("MH12AB", "eu"), ("皖A12345", "cn")]
    rows = []
    for k, (text, region) in enumerate(plates):
        img = make_demo_video.clean_plate(text, region, 64, seed=k)
        cv2.imwrite(str(tmp_path / f"p{k}.png"), img)
        # the model's own reading is the label, so the expected numbers do not depend on how
        # well it reads these renders; one copy of the first plate gets a wrong character
        rows.append({"file": f"p{k}.png", "text": rec.recognize([img])[0].text, "region": region})
    got = rows[0]["text"]
    assert len(got) >= 3
    wrong = "X" if got[1] != "X" else "Y"
    rows.append({"file": "p0.png", "text": got[0] + wrong + got[2:], "region": "us"})
    with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "text", "region"])
        w.writeheader()
        w.writerows(rows)
    res = json.loads(run("-m", "tools.evaluate", str(model), str(tmp_path / "labels.csv"), "--json",
                         "--latency-n", "8"))
    assert res["regions"]["us"]["n"] == 3 and res["regions"]["eu"]["n"] == 1 and res["regions"]["cn"]["n"] == 1
    assert res["regions"]["us"]["exact"] == round(2 / 3, 4)
    assert res["regions"]["eu"]["exact"] == 1.0 and res["regions"]["cn"]["exact"] == 1.0
    us_chars = len(rows[0]["text"]) + len(rows[1]["text"]) + len(got)
    assert res["regions"]["us"]["cer"] == round(1 / us_chars, 4)
    assert res["confusions"] == [[f"{wrong}→{got[1]}", 1]]
    assert [(f["file"], f["read"]) for f in res["failures"]] == [("p0.png", got)]
    assert set(res["latency_ms_p50_by_region"]) == {"us", "eu", "cn"}


@pytest.mark.needs_torch
def test_a_grown_network_starts_as_the_one_it_grew_from_and_its_new_parts_learn(tmp_path: Path) -> None:
    import torch

    from tools.crnn import CRNN, count_macs
    from tools.export_onnx import export, metadata, verify
    from tools.grow import grow

    torch.manual_seed(3)
    old = CRNN()
    for m in old.modules():  # batch-norms that are not identities, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    old.eval()
    new = grow(old, [24, 72, 96, 144, 192], hidden=160, layers=2, seed=1).eval()
    assert new.arch == {"hidden": 160, "widths": [24, 72, 96, 144, 192], "layers": 2}
    x = torch.randn(3, 1, 32, 96)
    with torch.no_grad():
        assert torch.allclose(old(x), new(x), atol=1e-4)
    # a copied channel's outgoing weights are split unevenly, so copy and original can drift apart
    w = new.cnn[4].weight  # second conv: input channels 16.. copy some of the first 16
    src = [c for c in range(16) if any(torch.allclose(new.cnn[0].weight[c], new.cnn[0].weight[j]) for j in range(16, 24))]
    assert src and not torch.allclose(w[:48, src[0]], old.cnn[4].weight[:, src[0]])
    # every new part gets a gradient from the first step on
    new.train()
    new(x).logsumexp(-1).sum().backward()
    assert float(new.mix[0].weight.grad.abs().sum()) > 0
    assert float(new.fc.weight.grad[:, 96:160].abs().sum()) > 0
    with pytest.raises(ValueError, match="can only grow"):
        grow(old, [8, 48, 64, 96, 128], hidden=96, layers=1)
    assert count_macs(**new.arch) > 2 * count_macs()

    path = tmp_path / "grown.onnx"
    export(new, path, metadata("grown", "0.0.3", "test", "x", arch=new.arch))
    assert verify(new, path) < 1e-3
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert "BiLSTM 160 x 2" in meta["edge_ocr.architecture"]


def test_a_crop_seen_small_is_shrunk_to_that_width_and_coded() -> None:
    from tools.evaluate import small_view

    wide = np.zeros((50, 200, 3), np.uint8)
    wide[10:40, 20:180] = 255
    got = small_view(wide, 80)
    assert got.shape == (20, 80, 3)  # the plate's aspect kept
    narrow = np.full((30, 60, 3), 128, np.uint8)
    assert small_view(narrow, 80).shape == (30, 60, 3)  # never enlarged
    # JPEG at a low quality changes the pixels of a sharp edge
    assert not np.array_equal(small_view(wide, 200, quality=20), wide)
