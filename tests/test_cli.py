"""Tests for the ``bayesgmm`` command line (:mod:`bayesgmm.cli`)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import pandas as pd
import pytest
from _cli import run_cli as _run

from bayesgmm import plotting
from bayesgmm.cli import DEMO_FILES, main

DEMO_ARGS = ["--max-components", "3", "--n-init", "2", "--quiet", "--no-fit"]
CHOSEN = re.compile(r"Chosen model: K=(\d+), covariance_type='(\w+)' \(mclust (\w{3})\)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[int, Path, str, str]:
    out_dir = tmp_path_factory.mktemp("cli") / "nested" / "demo"
    code, stdout, stderr = _run(["demo", "--out", str(out_dir), *DEMO_ARGS])
    return code, out_dir, stdout, stderr


def test_demo_writes_the_four_files(demo):
    code, out_dir, stdout, stderr = demo
    assert code == 0, stderr
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(DEMO_FILES)
    assert stderr == ""  # --quiet
    summary = (out_dir / "summary.txt").read_text(encoding="utf-8")
    assert summary == stdout  # summary.txt is what was printed
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".")]  # no staging


def test_demo_table_and_summary_agree(demo):
    _, out_dir, stdout, _ = demo
    table = pd.read_csv(out_dir / "bic_table.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 3 * 4
    assert set(table["n_components"]) == {1, 2, 3}
    assert set(table["covariance_type"]) == {"full", "tied", "diag", "spherical"}
    best = table.loc[table["bic"].idxmin()]

    match = CHOSEN.search(stdout)
    assert match, stdout
    assert int(match[1]) == best["n_components"]
    assert match[2] == best["covariance_type"]
    assert match[3] == best["mclust_name"]
    assert f"BIC             {best['bic']:.2f}" in stdout
    assert f"log-likelihood  {best['log_likelihood']:.2f}" in stdout
    assert f"{best['bic']:.2f}*" in stdout  # starred in the grid
    assert stdout.count("*") == 2  # the star and its explanation
    for heading in ("Weights and means:", "Covariance matrices", "mean eruptions"):
        assert heading in stdout


def test_demo_pngs_are_images(demo):
    _, out_dir, _, _ = demo
    for name in ("components.png", "bic.png"):
        image = mpimg.imread(out_dir / name)
        assert image.ndim == 3
        assert image.shape[0] > 300
        assert image.shape[1] > 400
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_demo_into_existing_folder_keeps_other_files(tmp_path):
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    (out_dir / "notes.md").write_text("mine")
    (out_dir / "summary.txt").write_text("stale")
    code, stdout, stderr = _run(["demo", "--out", str(out_dir), *DEMO_ARGS])
    assert code == 0, stderr
    assert (out_dir / "notes.md").read_text() == "mine"
    assert (out_dir / "summary.txt").read_text(encoding="utf-8") == stdout
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*DEMO_FILES, "notes.md"])


def test_demo_failure_leaves_no_half_written_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(plotting, "plot_model_selection", broken)
    out_dir = tmp_path / "demo"
    code, _, stderr = _run(["demo", "--out", str(out_dir), *DEMO_ARGS])
    assert code == 1
    assert stderr.strip() == "bayesgmm demo: error: disk full"
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a staging folder


def test_demo_progress_goes_to_stderr(tmp_path):
    out_dir = tmp_path / "demo"
    code, stdout, stderr = _run(
        ["demo", "--out", str(out_dir), "--max-components", "1", "--n-init", "1", "--no-fit"]
    )
    assert code == 0
    assert "[1/4] K=1 full" in stderr
    assert "[4/4] K=1 spherical" in stderr
    assert "Wrote components.png" in stderr
    assert "[1/4]" not in stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demo", "--max-components", "0"], "argument --max-components: must be an integer >= 1"),
        (["demo", "--n-init", "two"], "argument --n-init: must be an integer >= 1, got 'two'"),
        (["demo", "--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295]"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, expected):
    code, stdout, stderr = _run(argv)
    assert code == 2
    assert stdout == ""
    assert stderr.count("\n") == 1, stderr  # one line, no usage block, no traceback
    assert stderr.startswith("bayesgmm")
    assert "error:" in stderr
    assert expected in stderr


def test_out_that_is_a_file_is_a_bad_argument(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    code, _, stderr = _run(["demo", "--out", str(target), *DEMO_ARGS])
    assert code == 2
    assert "exists and is not a directory" in stderr
    assert target.read_text() == "keep me"


def test_help_returns_0(capsys):
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["demo", "--help"]) == 0
    help_text = capsys.readouterr().out
    for option in ("--out", "--max-components", "--n-init", "--seed", "--quiet"):
        assert option in help_text


def test_python_dash_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "bayesgmm", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: bayesgmm")
    assert "demo" in result.stdout


def test_console_script_entry_point():
    (script,) = entry_points(group="console_scripts", name="bayesgmm")
    assert script.value == "bayesgmm.cli:main"
    assert script.load() is main


def test_importing_the_cli_does_not_import_matplotlib():
    code = "import sys, bayesgmm.cli; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_demo_fits_the_chosen_model_three_ways(tmp_path):
    out_dir = tmp_path / "demo"
    code, _, stderr = _run(
        ["demo", "--out", str(out_dir), "--max-components", "3", "--n-init", "2", "--quiet",
         "--draws", "100", "--tune", "100", "--chains", "2"]
    )  # fmt: skip
    assert code == 0, stderr
    for name in ("report.html", "estimates.csv", "posterior.nc", "models.joblib"):
        assert (out_dir / "fit" / name).is_file(), name
    estimates = pd.read_csv(out_dir / "fit" / "estimates.csv")
    assert {"mle", "map", "post_mean"} <= set(estimates.columns)
    assert estimates["map"].notna().all()


_SLOW_REPORT = """
import pathlib, sys, time
from bayesgmm import report

def slow_report(*args, **kwargs):
    pathlib.Path(sys.argv[1]).write_text("writing")
    time.sleep(120)

report.fit_report = slow_report
from bayesgmm.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_while_writing_removes_the_staging_folder(tmp_path):
    import signal
    import time

    data = tmp_path / "data.csv"
    data.write_text("x,y\n" + "".join(f"{i % 7}.5,{(i * 3) % 11}.25\n" for i in range(30)))
    marker, out = tmp_path / "writing", tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_REPORT, str(marker), "fit", str(data), "--components",
         "2", "--methods", "mle", "--bootstrap", "0", "--quiet", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), process.communicate(timeout=10)
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
        assert len(staging) == 1  # the run is inside _write_atomically
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines() == [
        "bayesgmm: terminated (SIGTERM); no output was left half-written"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "writing"]
