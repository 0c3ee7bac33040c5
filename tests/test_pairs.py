import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sod_train.cli.main import main
from sod_train.data.pairs import Pair, locate_layout, scan_pairs, split_pairs, split_scan
from sod_train.data.synthetic import make_synthetic_duts
from sod_train.errors import UserInputError


def _copy(root, tmp_path):
    dest = tmp_path / "data"
    shutil.copytree(root, dest)
    return dest


def test_layouts(tmp_path):
    (tmp_path / "a" / "images").mkdir(parents=True)
    (tmp_path / "a" / "masks").mkdir()
    assert locate_layout(tmp_path / "a")[0].name == "images"
    (tmp_path / "b" / "DUTS-TE-Image").mkdir(parents=True)
    (tmp_path / "b" / "DUTS-TE-Mask").mkdir()
    assert locate_layout(tmp_path / "b")[1].name == "DUTS-TE-Mask"
    with pytest.raises(UserInputError, match="no data-set layout"):
        locate_layout(tmp_path)


def test_every_bad_file_is_reported_at_once(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    img, msk = root / "DUTS-TR-Image", root / "DUTS-TR-Mask"
    (msk / "synthetic_00000.png").unlink()  # missing mask
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(msk / "orphan.png")  # orphan mask
    (img / "synthetic_00001.jpg").write_bytes(b"not a jpeg")  # does not decode
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(msk / "synthetic_00002.png")  # size mismatch
    w, h = Image.open(img / "synthetic_00003.jpg").size
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(msk / "synthetic_00003.png")  # RGB mask
    Image.fromarray(np.zeros((h, w), np.uint16) + 300).save(msk / "synthetic_00004.png")  # 16-bit
    w, h = Image.open(img / "synthetic_00005.jpg").size
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(msk / "synthetic_00005.png")

    scan = scan_pairs(root)
    text = "\n".join(scan.problems)
    for needle in [
        "synthetic_00000.jpg: no mask",
        "orphan.png: orphan mask",
        "synthetic_00001.jpg: cannot decode",
        "synthetic_00002.png: size 5x5",
        "synthetic_00003.png: mask must be 8-bit single-channel, got RGB",
        "synthetic_00004.png: mask must be 8-bit single-channel, got 16-bit",
    ]:
        assert needle in text
    assert len(scan.problems) == 7

    result = CliRunner().invoke(
        main,
        [
            "train",
            "--duts-root",
            str(root),
            "--output",
            str(tmp_path / "x.onnx"),
            "--quiet",
            "--preset",
            "anchor",
        ],
    )
    assert result.exit_code == 2
    assert "7 bad file(s)" in result.output and "--skip-bad" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_truncated_jpeg_is_caught_when_decoding(synthetic_root, tmp_path):
    from sod_train.data.decode import decode_pairs

    root = _copy(synthetic_root, tmp_path)
    path = root / "DUTS-TR-Image" / "synthetic_00007.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # header intact, pixels cut
    scan = scan_pairs(root)
    assert scan.problems == []  # the header reads fine ...
    _, problems = decode_pairs(scan.pairs, 32, None, 0, "", True)
    assert (
        len(problems) == 1 and "synthetic_00007.jpg: cannot decode" in problems[0]
    )  # ... pixels don't


def test_rgb_masks_accepted_only_when_asked(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    w, h = Image.open(root / "DUTS-TR-Image" / "synthetic_00003.jpg").size
    Image.fromarray(np.full((h, w, 3), 255, np.uint8)).save(
        root / "DUTS-TR-Mask" / "synthetic_00003.png"
    )
    assert len(scan_pairs(root).problems) == 1
    assert scan_pairs(root, allow_rgb=True).problems == []


def test_default_converts_rgb_masks_and_the_cli_can_refuse_them(synthetic_root, tmp_path):
    """The release recipe (the default) converts RGB masks; --no-convert-rgb-masks must
    still be able to refuse them (before it, the flag could only switch the conversion on)."""
    from sod_train.train.config import TrainConfig

    assert TrainConfig.from_preset().convert_rgb_masks is True
    root = _copy(synthetic_root, tmp_path)
    w, h = Image.open(root / "DUTS-TR-Image" / "synthetic_00003.jpg").size
    Image.fromarray(np.full((h, w, 3), 255, np.uint8)).save(
        root / "DUTS-TR-Mask" / "synthetic_00003.png"
    )
    args = ["train", "--duts-root", str(root), "--output", str(tmp_path / "x.onnx"), "--quiet"]
    result = CliRunner().invoke(main, [*args, "--no-convert-rgb-masks"])
    assert result.exit_code == 2, result.output
    assert "synthetic_00003.png: mask must be 8-bit single-channel, got RGB" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.onnx").exists()


def test_split_is_the_anchor_fold():
    pairs = [
        Pair(f"p{i:05d}", Path(f"/i/p{i:05d}.jpg"), Path(f"/m/p{i:05d}.png")) for i in range(10_553)
    ]
    train, val = split_pairs(list(reversed(pairs)), 0.05, 42)  # input order must not matter
    expected = list(pairs)
    random.Random(42).shuffle(expected)
    assert len(val) == 528 and val == expected[:528] and train == expected[528:]
    _, small_val = split_pairs(pairs[:200], 0.05, 42)
    assert len(small_val) == 64  # at least 64
    with pytest.raises(UserInputError, match="too few"):
        split_pairs(pairs[:64], 0.05, 42)


def test_skipping_a_bad_file_does_not_reshuffle_the_fold(tmp_path):
    root = make_synthetic_duts(tmp_path / "d", n=80, size=(16, 16))
    _, val_before = split_scan(scan_pairs(root), 0.05, 42)
    victim = val_before[3]
    victim.image.write_bytes(b"broken")
    _, val_after = split_scan(scan_pairs(root), 0.05, 42)
    assert val_after == [p for p in val_before if p != victim]
