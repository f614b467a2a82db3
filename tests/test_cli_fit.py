"""Tests of ``bayesgmm fit`` and ``bayesgmm select`` and of their reports (bayesgmm.report)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import joblib
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from _cli import run_cli as _run

from bayesgmm import GaussianMixture, default_ci_prob
from bayesgmm._intervals import level_label, level_suffix
from bayesgmm.datasets import make_mixture

#: Interval columns of the CSV files carry the level: ci_lower_89 at ArviZ's default 0.89.
LEVEL = level_suffix(default_ci_prob())
EM = {"n_init": 5, "tol": 1e-6, "max_iter": 1000, "random_state": 0}
POINT_ARGS = ["--components", "2", "--methods", "mle,map", "--bootstrap", "20", "--quiet"]
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    """120 rows, two well-separated 2-D components, plus a text column."""
    sample = make_mixture(120, n_components=2, n_features=2, separation=6, random_state=0)
    frame = pd.DataFrame(sample.X, columns=["x", "y"])
    frame["species"] = np.where(sample.labels == 0, "setosa", "virginica")
    path = tmp_path_factory.mktemp("data") / "blobs.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def point_fit(data_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "point"
    code, stdout, stderr = _run(["fit", str(data_csv), *POINT_ARGS, "--out", str(out)])
    return code, out, stdout, stderr


class _Page(HTMLParser):
    """Collects the tags, attributes and text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _check_self_contained(page: _Page, min_images: int) -> None:
    sources = [value for tag, name, value in page.attrs if tag == "img" and name == "src"]
    assert len(sources) >= min_images
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for _, name, value in page.attrs:
        if name in ("src", "href", "srcset", "poster", "data", "action"):
            assert not re.match(r"\s*(https?:)?//", value), value
    assert "script" not in page.tags
    assert "link" not in page.tags
    assert "iframe" not in page.tags


def _by_component(table: pd.DataFrame, parameter: str, column: str, names) -> np.ndarray:
    rows = table[table["parameter"] == parameter]
    if parameter == "weights":
        return rows.sort_values("component")[column].to_numpy()
    if parameter == "means":
        return rows.pivot(index="component", columns="feature", values=column)[names].to_numpy()
    grid = rows.pivot(index=["component", "feature"], columns="feature_bis", values=column)
    k = rows["component"].nunique()
    return grid.loc[[(c, f) for c in range(k) for f in names], names].to_numpy().reshape(k, 2, 2)


# -- fit: point estimates ----------------------------------------------------------------
def test_fit_point_estimates_writes_its_files(point_fit):
    code, out, stdout, stderr = point_fit
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.html", "estimates.csv", "models.joblib", "summary.txt"]
    )
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging
    # --quiet: the only line on stderr is the note on the dropped text column.
    assert stderr.splitlines() == [
        "bayesgmm fit: note: columns left out: species (text, e.g. 'setosa' on line 2) "
        "(choose columns with --columns)"
    ]
    assert (out / "summary.txt").read_text(encoding="utf-8") == stdout
    assert "columns: x, y" in stdout


def test_fit_estimates_equal_direct_fits(point_fit, data_csv):
    _, out, _, _ = point_fit
    X = pd.read_csv(data_csv)[["x", "y"]]
    table = pd.read_csv(out / "estimates.csv")
    assert list(table.columns[:5]) == ["parameter", "component", "feature", "feature_bis", "label"]
    mle = GaussianMixture(2, covariance_type="full", **EM).fit(X)
    map_ = GaussianMixture(2, covariance_type="full", prior="default", **EM).fit(X)
    names = ["x", "y"]
    for parameter in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            _by_component(table, parameter, "mle", names), getattr(mle, f"{parameter}_"),
            rtol=1e-10, atol=1e-12,
        )  # fmt: skip
    # MAP components are aligned to the MLE's: match them by their means.
    means = _by_component(table, "means", "map", names)
    perm = [int(np.argmin(((map_.means_ - m) ** 2).sum(axis=1))) for m in means]
    assert sorted(perm) == [0, 1]
    for parameter in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            _by_component(table, parameter, "map", names), getattr(map_, f"{parameter}_")[perm],
            rtol=1e-10, atol=1e-12,
        )  # fmt: skip
    assert (table["mle_se"] > 0).all()  # bootstrap standard errors
    assert (table[f"mle_lower_{LEVEL}"] <= table[f"mle_upper_{LEVEL}"]).all()


def test_fit_states_the_prior_and_takes_another(point_fit, data_csv, tmp_path):
    """The summary and report say which prior, with its hyperparameters; --prior mclust
    fits mclust's prior (estimates equal the direct fit)."""
    _, out, stdout, _ = point_fit
    X = pd.read_csv(data_csv)[["x", "y"]]
    pooled = GaussianMixture(2, prior="default", **EM).fit(X).prior_
    assert f"prior: {pooled.describe()}" in stdout
    assert "pooled within-component covariance" in " ".join(_parse(out / "report.html").text)
    code, stdout, stderr = _run(
        ["fit", str(data_csv), "--components", "2", "--methods", "mle,map", "--bootstrap",
         "0", "--quiet", "--prior", "mclust", "--out", str(tmp_path / "m")]
    )  # fmt: skip
    assert code == 0, stderr
    map_ = GaussianMixture(2, prior="mclust", **EM).fit(X)
    assert f"prior: {map_.prior_.describe()}" in stdout
    table = pd.read_csv(tmp_path / "m" / "estimates.csv")
    weights = np.sort(_by_component(table, "weights", "map", ["x", "y"]))
    np.testing.assert_allclose(weights, np.sort(map_.weights_), rtol=1e-10)


def test_fit_report_is_self_contained_html(point_fit):
    _, out, _, _ = point_fit
    page = _parse(out / "report.html")
    assert "table" in page.tags
    _check_self_contained(page, min_images=3)  # components, forest, membership
    text = " ".join(page.text)
    for words in ("blobs.csv", "Estimates", "weights[0]", "covariances[1, x, y]", "bayesgmm"):
        assert words in text
    models = joblib.load(out / "models.joblib")
    assert sorted(models) == ["map", "mle"]


def test_fit_help_has_examples():
    for command in ("fit", "select"):
        code, stdout, _ = _run([command, "--help"])
        assert code == 0
        assert "examples:" in stdout
        assert f"bayesgmm {command} " in stdout


# -- fit: the full posterior (one NUTS run with its compile: 20 s here, 50 s on a busy machine) --
def test_fit_with_posterior(data_csv, tmp_path):
    import xarray as xr

    from bayesgmm import relabel_draws

    out = tmp_path / "posterior"
    code, stdout, stderr = _run(
        ["fit", str(data_csv), "--components", "2", "--draws", "100", "--tune", "100",
         "--chains", "2", "--bootstrap", "20", "--relabel", "stephens", "--quiet",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.html", "estimates.csv", "posterior.nc", "models.joblib", "summary.txt"]
    )
    assert stdout.startswith("bayesgmm fit:")  # no progress bar on stdout

    tree = xr.open_datatree(out / "posterior.nc")
    assert {"posterior", "posterior_raw", "sample_stats", "log_likelihood"} <= set(tree.children)
    assert tree["posterior"]["weights"].shape == (2, 100, 2)

    X = pd.read_csv(data_csv)[["x", "y"]]
    models = joblib.load(out / "models.joblib")
    assert sorted(models) == ["map", "mle", "posterior"]
    direct = GaussianMixture(2, covariance_type="full", **EM).fit(X)
    np.testing.assert_array_equal(models["mle"].predict(X), direct.predict(X))
    assert models["posterior"].predict_proba(X).shape == (120, 2)

    table = pd.read_csv(out / "estimates.csv")
    columns = ["post_mean", f"ci_lower_{LEVEL}", f"ci_upper_{LEVEL}", "r_hat", "mle_se"]
    assert table[columns].notna().all().all()
    page = _parse(out / "report.html")
    _check_self_contained(page, min_images=6)
    text = " ".join(page.text)
    assert "Sampler diagnostics" in text
    assert "No sampler problems detected" in text or "R-hat" in text
    assert "Sampler diagnostics:" in stdout

    # --relabel reaches the estimator, and the report says what it did
    posterior = models["posterior"]
    assert posterior.relabel == "stephens"
    info = posterior.relabel_info_
    assert info["method"] == "stephens"
    line = (
        "label switching: Stephens' (2000) Kullback-Leibler relabelling of the memberships "
        f"({info['n_permuted']} of {info['n_draws']} draws permuted"
    )
    assert line in stdout
    assert "Kullback-Leibler relabelling" in text
    # the draws in posterior.nc are the raw draws relabelled by Stephens' method, run again
    raw = tree["posterior_raw"].to_dataset()[["weights", "means", "covariances"]]
    again, perms = relabel_draws(raw, posterior, method="stephens", X=X.to_numpy())
    np.testing.assert_array_equal(perms, posterior.label_permutations_)
    np.testing.assert_allclose(tree["posterior"]["means"].values, again["means"].values)
    assert info["n_permuted"] == int((perms != np.arange(2)).any(axis=-1).sum())


def test_fit_relabel_choices_are_checked(data_csv, tmp_path):
    code, _, stderr = _run(
        ["fit", str(data_csv), "--components", "2", "--relabel", "hungarian", "--quiet",
         "--out", str(tmp_path / "x")]
    )  # fmt: skip
    assert code == 2
    assert "--relabel" in stderr
    assert "'map', 'stephens'" in stderr


# -- select --------------------------------------------------------------------------------
def test_select_grid(data_csv, tmp_path):
    out = tmp_path / "select"
    code, stdout, stderr = _run(
        ["select", str(data_csv), "--components", "1-3", "--covariance", "full,diag",
         "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["selection.csv", "selection.png", "report.html", "summary.txt"]
    )
    table = pd.read_csv(out / "selection.csv")
    assert len(table) == 6
    assert set(table["covariance_type"]) == {"full", "diag"}
    best = table.loc[table["bic"].idxmin()]
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert summary == stdout
    match = re.search(r"^  bic\s+K=(\d+), (\w+)", summary, flags=re.MULTILINE)
    assert match, summary
    assert (int(match[1]), match[2]) == (best["n_components"], best["covariance_type"])
    assert mpimg.imread(out / "selection.png").shape[0] > 300
    _check_self_contained(_parse(out / "report.html"), min_images=1)


def test_select_posterior_relabel_reaches_the_fits_and_the_report(data_csv, tmp_path):
    """`select --posterior --relabel stephens`: every posterior fit of the grid used
    Stephens' method, and the report's sampler table says how many draws it permuted."""
    out = tmp_path / "select"
    code, _, stderr = _run(
        ["select", str(data_csv), "--components", "2", "--covariance", "diag",
         "--posterior", "--draws", "60", "--tune", "60", "--chains", "2",
         "--relabel", "stephens", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    text = " ".join(_parse(out / "report.html").text)
    assert "relabelled by Stephens' (2000) Kullback-Leibler method" in text
    match = re.search(r"(\d+) of 120 \(stephens\)", text)  # 2 chains x 60 draws
    assert match, text
    assert 0 <= int(match[1]) <= 120


def test_demo_and_select_take_relabel():
    for command in ("demo", "select"):
        code, stdout, _ = _run([command, "--help"])
        assert code == 0
        assert "--relabel {map,stephens}" in stdout


@pytest.mark.parametrize("components", ["3-1", "a-b", "0-2", "2,,3", "1-", "x"])
def test_select_bad_components(data_csv, tmp_path, components):
    out = tmp_path / "select"
    code, stdout, stderr = _run(
        ["select", str(data_csv), f"--components={components}", "--out", str(out)]
    )
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert "--components" in stderr
    assert not out.exists()


# -- errors --------------------------------------------------------------------------------
def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing file", "not found"),
        ("unknown column", "unknown column 'z' in --columns; the columns are: x, y, species"),
        ("text column", "column 'species' in --columns is not numeric ('setosa' on line 2)"),
        ("no numeric column", "has no numeric column"),
        ("too few rows", "too few rows"),
        ("unknown option", "unrecognized arguments: --frobnicate"),
        ("bad method", "unknown method 'bayes'"),
        ("bad covariance", "unknown covariance type 'round'; choose from full, tied"),
        ("bad bootstrap", "must be 0 (no bootstrap) or >= 2"),
        ("empty file", "is empty"),
    ],
)
def test_fit_errors_are_one_line_with_exit_code_2(data_csv, tmp_path, case, expected):
    data, extra = str(data_csv), []
    if case == "missing file":
        data = str(tmp_path / "nope.csv")
    elif case == "unknown column":
        extra = ["--columns", "x,z"]
    elif case == "text column":
        extra = ["--columns", "x,species"]
    elif case == "no numeric column":
        data = str(_write(tmp_path / "text.csv", pd.DataFrame({"a": ["u", "v", "w"]})))
    elif case == "too few rows":
        data = str(_write(tmp_path / "two.csv", pd.DataFrame({"x": [1.0, 2.0], "y": [0.0, 1.0]})))
        extra = ["--components", "3"]
    elif case == "unknown option":
        extra = ["--frobnicate"]
    elif case == "bad method":
        extra = ["--methods", "mle,bayes"]
    elif case == "bad covariance":
        extra = ["--covariance", "round"]
    elif case == "bad bootstrap":
        extra = ["--bootstrap", "1"]
    elif case == "empty file":
        (tmp_path / "empty.csv").write_text("")
        data = str(tmp_path / "empty.csv")
    if "--components" not in extra:
        extra += ["--components", "2"]
    out = tmp_path / "out"
    code, stdout, stderr = _run(["fit", data, *extra, "--out", str(out), "--quiet"])
    assert code == 2, stderr
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("bayesgmm")
    assert expected in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()


def test_fit_out_is_a_file(data_csv, tmp_path):
    out = tmp_path / "file"
    out.write_text("not a folder")
    code, _, stderr = _run(["fit", str(data_csv), *POINT_ARGS, "--out", str(out)])
    assert code == 2
    assert "exists and is not a directory" in stderr
    assert out.read_text() == "not a folder"


def test_failure_midway_leaves_no_output(data_csv, tmp_path, monkeypatch):
    def fail(self, X, y=None):
        raise ValueError("EM blew up")

    monkeypatch.setattr(GaussianMixture, "fit", fail)
    out = tmp_path / "new" / "out"
    code, _, stderr = _run(["fit", str(data_csv), *POINT_ARGS, "--out", str(out)])
    assert code == 1
    assert stderr.strip().splitlines()[-1] == "bayesgmm fit: error: EM blew up"
    assert not out.exists()


def test_failure_while_writing_keeps_existing_folder(data_csv, tmp_path, monkeypatch):
    from bayesgmm import report

    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "report.html").write_text("old report")
    (out / "posterior.nc").write_text("stale draws")

    def fail(*args, **kwargs):
        raise ValueError("cannot draw")

    with monkeypatch.context() as patch:
        patch.setattr(report, "fit_report", fail)
        code, _, stderr = _run(["fit", str(data_csv), *POINT_ARGS, "--out", str(out)])
    assert code == 1
    assert "cannot draw" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "posterior.nc", "report.html"]
    assert (out / "report.html").read_text() == "old report"

    # A successful run replaces bayesgmm's files, removes the stale posterior and keeps
    # the user's file.
    code, _, stderr = _run(["fit", str(data_csv), *POINT_ARGS, "--out", str(out)])
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["keep.txt", "report.html", "estimates.csv", "models.joblib", "summary.txt"]
    )
    assert (out / "keep.txt").read_text() == "mine"


class _FakePosterior:
    """Duck-typed fitted posterior for :func:`bayesgmm.report.sampler_messages`."""

    def __init__(self, rhat_raw, rhat_after, ess, n_divergences=0, chains=2, stuck=False):
        import xarray as xr

        index = pd.MultiIndex.from_product(
            [["weights", "means", "covariances"], ["raw", "relabelled"]],
            names=["parameter", "draws"],
        )
        rhat = [r for pair in zip(rhat_raw, rhat_after, strict=True) for r in pair]
        self.diagnostics_ = pd.DataFrame(
            {"max_rhat": rhat, "min_ess_bulk": np.repeat(ess, 2), "min_ess_tail": 400.0},
            index=index,
        )
        self.n_divergences_, self.chains, self.draws = n_divergences, chains, 200
        loglik = np.random.default_rng(0).normal(size=(chains, 200, 5))
        if stuck:
            loglik[0] += 50.0
        self.idata_ = xr.DataTree.from_dict(
            {"log_likelihood": xr.Dataset({"x": (("chain", "draw", "obs"), loglik)})}
        )


def test_sampler_messages_in_plain_language():
    from bayesgmm.report import sampler_messages

    messages, problem = sampler_messages(_FakePosterior([1.0] * 3, [1.0] * 3, [900] * 3))
    assert not problem
    assert messages == [
        "No sampler problems detected: no divergent transitions, R-hat at most 1.01 and "
        "bulk ESS at least 200 for every parameter."
    ]
    messages, problem = sampler_messages(
        _FakePosterior([1.0, 2.5, 1.2], [1.0, 1.002, 1.03], [900, 900, 150], n_divergences=3)
    )
    assert problem
    text = "\n".join(messages)
    assert text.startswith("3 divergent transitions (of 400 draws)")
    assert "R-hat above 1.01 for covariances (1.030): the chains disagree" in text
    assert "Label switching in the raw draws (R-hat up to 2.50" in text
    assert "bulk ESS below 200) for covariances (150)" in text
    # Label switching that relabelling fixed is a note, not a problem.
    messages, problem = sampler_messages(_FakePosterior([1.0, 2.5, 1.0], [1.0] * 3, [900] * 3))
    assert not problem
    assert len(messages) == 2
    assert messages[0].startswith("Label switching")
    assert "relabelling every draw to the MAP fit's components;" in messages[0]
    assert messages[1].startswith("No other sampler problems detected")
    # the message names the relabelling that was used, with its count
    fake = _FakePosterior([1.0, 2.5, 1.0], [1.0] * 3, [900] * 3)
    fake.relabel_info_ = {"method": "stephens", "n_permuted": 150, "n_draws": 400}
    messages, _ = sampler_messages(fake)
    assert "Stephens' (2000) Kullback-Leibler relabelling" in messages[0]
    assert "(150 of 400 draws permuted)" in messages[0]
    messages, problem = sampler_messages(
        _FakePosterior([1.0] * 3, [1.0] * 3, [900] * 3, stuck=True)
    )
    assert problem
    assert "different modes" in messages[0]
    messages, _ = sampler_messages(_FakePosterior([1.0] * 3, [1.0] * 3, [900] * 3, chains=1))
    assert messages[0].startswith("Only one chain")


class _Unpicklable:
    """Stands in for a posterior whose draws do not pickle."""

    def __init__(self) -> None:
        self.idata_ = lambda: None  # a local function: pickle refuses it
        self.n_components = 2


def test_models_without_picklable_draws_are_saved_without_them(tmp_path):
    from bayesgmm.cli import _dump_models

    path = tmp_path / "models.joblib"
    assert _dump_models({"mle": "fit", "posterior": _Unpicklable()}, path) is False
    models = joblib.load(path)
    assert models["mle"] == "fit"
    assert models["posterior"].n_components == 2
    assert not hasattr(models["posterior"], "idata_")


# -- a real browser --------------------------------------------------------------------------
_PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((img) => [img.complete, img.naturalWidth]);
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({images, tables: document.querySelectorAll("table").length,
                                    rows: document.querySelectorAll("tbody tr").length});
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={user_data}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_report_renders_in_headless_chromium(point_fit, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: run `apt-get install chromium` to test the report")
    _, out, _, _ = point_fit
    report = out / "report.html"
    n_images = report.read_text(encoding="utf-8").count('<img src="data:image/png;base64,')

    # The DOM after loading: every image decoded (natural width > 0), the table there.
    probed = tmp_path / "probed.html"
    probed.write_text(
        report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
        encoding="utf-8",
    )
    result = _chromium(
        "--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), user_data=tmp_path / "u1"
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, flags=re.DOTALL)
    assert match, result.stderr[-2000:]
    probe = json.loads(match[1].replace("&quot;", '"'))
    assert len(probe["images"]) == n_images >= 3
    assert all(complete and width > 300 for complete, width in probe["images"])
    assert probe["tables"] >= 2
    assert probe["rows"] >= 12

    # A screenshot of the page as a person sees it: large and not blank.
    shot = tmp_path / "report.png"
    result = _chromium(
        f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri(),
        user_data=tmp_path / "u2",
    )  # fmt: skip
    assert shot.exists(), result.stderr[-2000:]
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.05  # text, tables and plots, not an empty page
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 100


# -- one labelling across the outputs (one small NUTS run) ---------------------------------
@pytest.mark.slow
def test_one_labelling_in_every_saved_file(data_csv, tmp_path, monkeypatch):
    """estimates.csv, models.joblib and posterior.nc number the components alike.

    The MLE is made to come out with its components in the reverse order of the MAP's
    (a permuted MLE is the same MLE), so the test fails unless the outputs are relabelled.
    """
    import xarray as xr

    fit = GaussianMixture.fit

    def reversed_mle(self, X, y=None, **kwargs):
        fit(self, X, y, **kwargs)
        if self.prior is None:
            p = self._params()
            self._set_params(type(p)(*(a[::-1].copy() for a in p)))
        return self

    monkeypatch.setattr(GaussianMixture, "fit", reversed_mle)
    out = tmp_path / "labels"
    code, stdout, stderr = _run(
        ["fit", str(data_csv), "--components", "2", "--draws", "60", "--tune", "60",
         "--chains", "1", "--bootstrap", "0", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    names = ["x", "y"]
    table = pd.read_csv(out / "estimates.csv")
    models = joblib.load(out / "models.joblib")
    tree = xr.open_datatree(out / "posterior.nc")
    post_means = tree["posterior"]["means"].mean(("chain", "draw")).to_numpy()
    for method in ("mle", "map"):
        np.testing.assert_allclose(
            _by_component(table, "means", method, names), models[method].means_, rtol=1e-10
        )
        np.testing.assert_allclose(
            _by_component(table, "weights", method, names), models[method].weights_, rtol=1e-10
        )
    np.testing.assert_allclose(_by_component(table, "means", "post_mean", names), post_means)
    # The same component everywhere: MLE, MAP and posterior means of component k are close
    # (the components are 6 standard deviations apart).
    for k in range(2):
        assert np.abs(models["mle"].means_[k] - models["map"].means_[k]).max() < 0.5
        assert np.abs(models["mle"].means_[k] - post_means[k]).max() < 0.5
    assert "components of the MLE fit renumbered" in stdout


def test_quiet_collects_library_warnings_into_the_summary(data_csv, tmp_path, monkeypatch):
    import logging
    import warnings

    fit = GaussianMixture.fit

    def noisy_fit(self, X, y=None, **kwargs):
        warnings.warn("a library warning", UserWarning, stacklevel=1)
        logging.getLogger("pymc.sampling").warning("a library log message")
        logging.getLogger("pymc").info("chatter that is dropped")
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(GaussianMixture, "fit", noisy_fit)
    out = tmp_path / "quiet"
    code, _, stderr = _run(
        ["fit", str(data_csv), "--components", "2", "--methods", "mle", "--bootstrap", "0",
         "--columns", "x,y", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    assert stderr == ""  # nothing reaches the terminal under --quiet
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert "UserWarning" in summary
    assert "a library warning" in summary
    assert "pymc log: a library log message" in summary
    assert "chatter" not in summary
    assert logging.getLogger("pymc").propagate or logging.getLogger("pymc").handlers  # restored


def test_default_bootstrap_scales_down_for_large_n_with_a_note(data_csv, tmp_path, monkeypatch):
    from bayesgmm.cli import _fit

    monkeypatch.setattr(_fit, "BOOTSTRAP_FULL_UP_TO", 24)  # so that N = 120 is "large"
    monkeypatch.setattr(_fit, "BOOTSTRAP_MIN", 10)
    out = tmp_path / "boot"
    code, stdout, stderr = _run(
        ["fit", str(data_csv), "--components", "2", "--methods", "mle", "--columns", "x,y",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    note = (
        "bootstrap: 40 replicates, the default 200 scaled down for N = 120 rows "
        "(200 x 24 / N, at least 10); choose with --bootstrap"
    )
    assert note in stdout
    assert "bootstrap: 40 replicates of the MLE" in stdout
    # Progress with the time left.
    assert re.search(r"bootstrap \(nonparametric\): 40/40 replicates, 0 failed, "
                     r"0 degenerate, \d+ s so far, about 0 s left", stderr), stderr  # fmt: skip
    # Given explicitly, the number is used as it is.
    code, stdout, _ = _run(
        ["fit", str(data_csv), "--components", "2", "--methods", "mle", "--columns", "x,y",
         "--bootstrap", "12", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert "scaled down" not in stdout
    assert "bootstrap: 12 replicates of the MLE" in stdout


# -- --standardize ---------------------------------------------------------------------------
# EVI, EEI: mclust families closed under per-column scaling, stored as variances, with
# closed-form M-steps (an iterative one, VEI, stops its inner loop on a relative change
# of its objective, which rescaling shifts: part 2 then agrees to ~1e-4 only)
@pytest.mark.parametrize("covariance", ["full", "diag", "EVI", "EEI"])
def test_standardize_reports_in_original_units_exactly(tmp_path, covariance):
    from bayesgmm import bootstrap

    sample = make_mixture(150, n_components=2, n_features=2, separation=6, random_state=2)
    X = pd.DataFrame(sample.X * [8e4, 0.05] + [3e5, 0.1], columns=["income", "rate"])
    path = tmp_path / "units.csv"
    X.to_csv(path, index=False)
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        ["fit", str(path), "--components", "2", "--covariance", covariance, "--methods",
         "mle,map", "--bootstrap", "20", "--standardize", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    assert "--standardize: fitted to (x - mean) / sd per column" in stdout
    table = pd.read_csv(out / "estimates.csv")
    models = joblib.load(out / "models.joblib")
    names = ["income", "rate"]
    m, s = X.mean().to_numpy(), X.std(ddof=0).to_numpy()
    Z = (X - m) / s

    # 1. Exactly the linear map of a fit to the standardized data.
    direct = GaussianMixture(2, covariance_type=covariance, **EM).fit(Z)
    np.testing.assert_allclose(_by_means(table, "mle", names), m + direct.means_ * s, rtol=1e-10)
    scale = np.outer(s, s) if direct.covariances_.ndim == 3 else s**2
    mle = models["mle"]
    np.testing.assert_allclose(mle.covariances_, direct.covariances_ * scale, rtol=1e-10)
    np.testing.assert_allclose(mle.weights_, direct.weights_, rtol=1e-12)
    np.testing.assert_array_equal(mle.predict(X), direct.predict(Z))
    np.testing.assert_allclose(mle.score(X), direct.score(Z) - np.log(s).sum(), rtol=1e-12)
    boot = bootstrap(direct, Z, n_boot=20, random_state=0)
    se = boot.standard_errors()["means"].to_numpy() * s
    np.testing.assert_allclose(_by_means(table, "mle_se", names), se, rtol=1e-8)

    # 2. The same MLE as a direct fit to the raw data, up to reg_covar (1e-6 in
    #    standardized units here, 0 in the raw fit) and EM's stopping rule (tol=1e-6 on
    #    the mean log-likelihood, so agreement to ~1e-6, not to rounding).
    raw = GaussianMixture(2, covariance_type=covariance, **{**EM, "reg_covar": 0.0}).fit(X)
    order = np.argsort(raw.means_[:, 0])
    mine = np.argsort(mle.means_[:, 0])
    np.testing.assert_allclose(mle.means_[mine], raw.means_[order], rtol=1e-5)
    np.testing.assert_allclose(mle.covariances_[mine], raw.covariances_[order], rtol=1e-4)
    np.testing.assert_allclose(mle.weights_[mine], raw.weights_[order], rtol=1e-5)

    # 3. The MAP maps with its prior: the saved MAP is the MAP of the raw data under the
    #    saved (mapped) prior.
    map_ = models["map"]
    refit = GaussianMixture(
        2, covariance_type=covariance, prior=map_.prior_, **{**EM, "reg_covar": 0.0}
    ).fit(X)
    mine, order = np.argsort(map_.means_[:, 0]), np.argsort(refit.means_[:, 0])
    #    (Both stop at EM's tol=1e-6, from different starts: agreement to ~1e-6.)
    np.testing.assert_allclose(map_.means_[mine], refit.means_[order], rtol=1e-5)
    np.testing.assert_allclose(map_.covariances_[mine], refit.covariances_[order], rtol=1e-4)


def _by_means(table: pd.DataFrame, column: str, names) -> np.ndarray:
    return _by_component(table, "means", column, names)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--covariance", "spherical"], "--standardize does not work with spherical"),
        (["--methods", "mle,posterior"], "--standardize is not available with the posterior"),
    ],
)
def test_standardize_refuses_what_it_cannot_map(data_csv, tmp_path, extra, words):
    code, stdout, stderr = _run(
        ["fit", str(data_csv), "--components", "2", "--standardize", *extra, "--quiet",
         "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert words in stderr


def test_fit_with_observed_information_columns(data_csv, tmp_path):
    from bayesgmm import observed_information

    out = tmp_path / "info"
    args = ["--components", "2", "--methods", "mle,information", "--bootstrap", "0", "--quiet"]
    code, _, stderr = _run(["fit", str(data_csv), *args, "--out", str(out)])
    assert code == 0, stderr
    assert "MLE s.e. (information)" in (out / "report.html").read_text(encoding="utf-8")
    table = pd.read_csv(out / "estimates.csv").set_index("label")
    X = pd.read_csv(data_csv)[["x", "y"]]
    mle = GaussianMixture(2, covariance_type="full", **EM).fit(X)
    expected = observed_information(mle, X).standard_errors()
    np.testing.assert_allclose(table.loc[expected.index, "info_se"], expected, rtol=1e-6)
    assert (table[f"info_lower_{LEVEL}"] < table["mle"]).all()
    assert (table["mle"] < table[f"info_upper_{LEVEL}"]).all()
    bad = ["fit", str(data_csv), "--methods", "map,information", "--out", str(out)]
    code, _, stderr = _run(bad)
    assert code == 2
    assert "add mle to --methods" in stderr


def test_fit_with_laplace_columns(data_csv, tmp_path):
    from bayesgmm import laplace

    out = tmp_path / "laplace"
    args = ["--components", "2", "--methods", "map,laplace", "--quiet"]
    code, _, stderr = _run(["fit", str(data_csv), *args, "--out", str(out)])
    assert code == 0, stderr
    level = level_label(default_ci_prob())
    assert f"Laplace {level} interval" in (out / "report.html").read_text(encoding="utf-8")
    table = pd.read_csv(out / "estimates.csv").set_index("label")
    X = pd.read_csv(data_csv)[["x", "y"]]
    fit = GaussianMixture(2, covariance_type="full", prior="default", **EM).fit(X)
    tree = laplace(fit, X, draws=4000, random_state=0)
    sd = tree["posterior"]["means"].std(("chain", "draw")).values
    # same MAP (seed 0) and the same Gaussian: the sds agree up to Monte Carlo error
    labels = [f"means[{k}, {f}]" for k in range(2) for f in ("x", "y")]
    np.testing.assert_allclose(
        np.sort(table.loc[labels, "laplace_sd"]), np.sort(sd.ravel()), rtol=0.1
    )
    assert (table[f"laplace_lower_{LEVEL}"] < table["map"]).all()
    assert (table["map"] < table[f"laplace_upper_{LEVEL}"]).all()
    code, _, stderr = _run(["fit", str(data_csv), "--methods", "mle,laplace", "--out", str(out)])
    assert code == 2
    assert "add map to --methods" in stderr
