"""The command line, run as a user runs it: a real process, real files."""

import os
import subprocess
import sys

from PIL import Image

from .conftest import EXAMPLES, ROOT


def _run(*args, env_extra=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "colorizer", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_transfer_writes_result_and_levels(vgg_path, tmp_path):
    out = tmp_path / "result.png"
    proc = _run("transfer", EXAMPLES / "green_hills.jpg", EXAMPLES / "ochre_hills.jpg", "-o", out,
                "--working-size", "160", "--save-levels", "--vgg", vgg_path)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == Image.open(EXAMPLES / "green_hills.jpg").size
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["result.png"] + [f"result_L{k}.png" for k in range(1, 6)])


def test_bad_input_one_line_and_nothing_written(vgg_path, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((EXAMPLES / "coast_day.jpg").read_bytes()[:3000])  # truncated JPEG
    out = tmp_path / "out.png"
    proc = _run("transfer", bad, EXAMPLES / "coast_sunset.jpg", "-o", out, "--vgg", vgg_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "truncated" in proc.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg"]


def test_missing_weights_offline_says_how_to_fix(tmp_path):
    proc = _run("transfer", EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg", "-o", tmp_path / "o.png",
                env_extra={"COLORIZER_VGG": "", "HF_HOME": str(tmp_path / "empty-cache")})
    assert proc.returncode == 2 and "COLORIZER_VGG" in proc.stderr
    assert not (tmp_path / "o.png").exists()


def test_output_problems_fail_before_work(tmp_path):
    proc = _run("transfer", EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg", "-o", tmp_path / "x" / "o.png")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = _run("transfer", EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg", "-o", tmp_path / "o.xyz")
    assert proc.returncode == 2 and "format" in proc.stderr


def test_bad_option_values_fail_at_once(tmp_path):
    for flag, value in (("--lambda-local", "inf"), ("--completeness", "nan"), ("--working-size", "10"),
                        ("--levels", "3 4")):
        proc = _run("transfer", EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg", "-o", tmp_path / "o.png",
                    flag, *value.split())
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert flag[2:].replace("-", "_") in proc.stderr
    assert not (tmp_path / "o.png").exists()
