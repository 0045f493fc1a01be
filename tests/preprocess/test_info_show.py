"""info (text and JSON) and show (a PNG of full/low pairs)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from preprocess.index_format import parse_index
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


def _rewrite_images(tar: Path, size: int) -> None:
    """Rewrite ``tar`` with every image member cut to ``size`` bytes (names and order kept, index untouched)."""
    with tarfile.open(tar) as source:
        members = [(m, source.extractfile(m).read()) for m in source.getmembers()]
    with tarfile.open(tar, "w", format=tarfile.USTAR_FORMAT) as out:
        for member, data in members:
            data = data[:size] if not member.name.endswith(".label") else data
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))


def _show_fails(capsys, data: Path, tmp_path: Path) -> str:
    code, out, err = run_cli(capsys, "show", data, "--split", "val", "--count", "3", "--out", tmp_path / "p.png")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    assert not (tmp_path / "p.png").exists()
    return err


def test_show_refuses_low_images_of_the_wrong_size(capsys, tmp_path):
    """Low images of another size than the manifest's: one error line naming the shard and the expected size."""
    data, other = tmp_path / "data", tmp_path / "ratio4"
    assert run_cli(capsys, *synthetic_args(data))[0] == 0
    assert run_cli(capsys, *synthetic_args(other, "--ratio", "4"))[0] == 0
    tar = data / "low" / "val-000000.tar"
    saved = tar.read_bytes()
    _rewrite_images(tar, 27)  # 3x3x3 raw bytes where the manifest says 4x4x3, the index still says 48
    first = parse_index(data / "low" / "val-000000.idx")[0]  # the shard's first sample (shuffled order)
    offset = first.components["raw"][0]
    err = _show_fails(capsys, data, tmp_path)
    assert err.startswith(f"error: {tar}: val-000000.idx says {first.key}.raw of 48 bytes at offset {offset}, the tar "
                          f"has member {first.key}.raw of 27 bytes there; expected the shard the manifest describes")
    assert "4x4x3 images" in err
    tar.write_bytes(saved)
    shutil.rmtree(data / "low")
    shutil.copytree(other / "low", data / "low")  # low shards (and their indexes) built at ratio 4: 2x2x3
    err = _show_fails(capsys, data, tmp_path)
    assert err == (f"error: {tar} key {first.key}: raw image has 12 bytes, expected 48 for shape [4, 4, 3] "
                   "(HWC uint8)\n")
    tar.unlink()
    assert _show_fails(capsys, data, tmp_path) == f"error: {tar}: cannot read shard (No such file or directory)\n"
