"""info (text and JSON) and show (a PNG of full/low pairs)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.preprocess.fixtures import run_cli, synthetic_args


def test_info_and_show(capsys, tmp_path):
    data = tmp_path / "data"
    assert run_cli(capsys, *synthetic_args(data))[0] == 0
    code, out, _ = run_cli(capsys, "info", data, "--json")
    info = json.loads(out)
    assert code == 0 and info["splits"] == {"train": {"num_samples": 64, "num_shards": 4},
                                            "val": {"num_samples": 16, "num_shards": 1}}
    assert info["shapes"]["low"] == [4, 4, 3] and len(info["mean"]) == 3
    code, out, _ = run_cli(capsys, "info", data)
    assert code == 0 and "train: 64 samples in 4 shards" in out and "full 8x8x3 -> low 4x4x3" in out
    code, out, _ = run_cli(capsys, "show", data, "--split", "val", "--count", "3", "--out", tmp_path / "p.png")
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'p.png'}"
    png = np.asarray(Image.open(tmp_path / "p.png"))
    assert png.shape[0] >= 3 * 128 and png.shape[1] >= 2 * 128  # three rows of two upscaled images
    code, _, err = run_cli(capsys, "info", tmp_path / "missing")
    assert code == 2 and err.startswith("error: ") and "no manifest" in err
