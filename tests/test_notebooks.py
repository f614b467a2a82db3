"""Execute the teaching notebooks in ``notebooks/`` on small settings and check their numbers.

Each notebook reads ``BAYESGMM_FAST=1`` (fewer draws, chains, bootstrap replicates, grid
cells), collects its key results in a dict and prints it as JSON in its last cell; the
checks below parse that output, so a notebook that runs but computes the wrong thing fails.
The notebooks are stored without outputs.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; a NUTS fit with a cold numba cache takes ~1 min
# Kernels started by nbclient replace "python" in the kernelspec by sys.executable, so the
# notebooks run on this interpreter (the venv's); test_kernel_runs_this_python checks it.
KERNEL = "python3"


def _run(path: Path, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Execute a notebook in a fresh kernel with the small settings; return it executed."""
    monkeypatch.setenv("BAYESGMM_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        # small data on a shared machine: oversubscribed BLAS threads only slow EM down
        monkeypatch.setenv(var, "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    return nb


def _text(cell) -> str:
    return "".join(
        out.get("text", "") for out in cell.get("outputs", []) if out["output_type"] == "stream"
    )


def _results(nb) -> dict:
    """The JSON dict the last cell prints."""
    last = nb.cells[-1]
    assert last.cell_type == "code"
    assert "json.dumps(results)" in last.source
    lines = [line for line in _text(last).splitlines() if line.startswith("{")]
    assert lines, f"the last cell printed no JSON: {_text(last)!r}"
    return json.loads(lines[-1])


# -- checks of each notebook's numbers ----------------------------------------------------
def _check_em_from_scratch(r: dict) -> None:
    assert r["max_mean_diff"] < 1e-6  # hand-written EM == GaussianMixture
    assert r["gm_variances_diff"] < 1e-6
    assert r["loglik_never_decreases"]
    assert sorted(r["hand_means"]) == pytest.approx([-1.0, 2.0], abs=0.2)


def _check_clustering_tour(r: dict) -> None:
    assert r["ari_blobs"] > 0.9
    bic = r["bic_by_type"]
    assert bic["full"] < bic["tied"] < bic["diag"] < bic["spherical"]
    assert r["bic_choice"] == {"n_components": 2, "covariance_type": "full"}  # as mclust
    assert r["aic_choice_k"] >= 2
    assert r["ari_gmm"] > 0.9
    assert r["ari_gmm"] > r["ari_kmeans"] + 0.3


def _check_mle_map_posterior(r: dict) -> None:
    assert r["conjugate_diff_fitted_var"] < 1e-6  # MAP == closed form at the fitted variance
    assert r["conjugate_diff_known_var"] < 1e-6  # and with the variance pinned
    assert r["map_agrees"]
    near_prior, far = r["shrinkage_distance"][1], r["shrinkage_distance"][0]
    assert near_prior < 0.1 * far  # large kappa0 pulls the means onto m0
    assert r["map_cov_smaller"]
    assert sorted(m[0] for m in r["posterior_means"]) == pytest.approx([0.0, 3.0], abs=0.8)
    # "MAP minus MLE is mostly not shrinkage": the MAP variance is the mode of a skewed
    # posterior, well below its mean, near the one-component prediction (n+1)/(n+8) ...
    ratio, predicted = r["variance_mode_mean_ratio"], r["variance_mode_mean_predicted"]
    assert max(ratio) < 0.95
    assert abs(sum(ratio) / len(ratio) - sum(predicted) / len(predicted)) < 0.15
    # ... while the posterior mean, under the same prior, is nearer the MLE than the MAP is
    pairs = zip(r["variance_map_over_mle"], r["variance_mean_over_mle"], strict=True)
    for to_map, to_mean in pairs:
        assert abs(math.log(to_mean)) < abs(math.log(to_map))


def _check_small_data(r: dict) -> None:
    assert r["mle_collapses"]
    assert r["collapse_rate"]["MAP"] == 0.0
    assert r["collapse_rate"]["MLE"] > 0.2
    assert r["median_test_loglik"]["MAP"] > r["median_test_loglik"]["MLE"]
    assert r["mean_ci_width_ratio"] > 1.2  # the 2-point component is the least certain
    assert r["band_width_at_boundary"] > 0.3


def _check_uncertainty(r: dict) -> None:
    assert 0.5 < r["sd_ratio_median"] < 2.0  # bootstrap se ~ posterior sd on 272 points
    assert r["n_uncertain_points"] >= 1
    assert r["rhat_switched"] > 1.1
    assert r["rhat_relabelled"] < 1.05
    assert r["rhat_relabelled"] < r["rhat_switched"]
    # overlapping components: the sampler switches on its own and relabelling cannot
    # repair the component-wise summaries; the co-clustering shows no separate groups,
    # unlike Old Faithful's
    assert r["overlap_permuted_fraction"] > 0.1
    assert r["overlap_rhat_relabelled"] > 1.01
    assert r["faithful_coclust_ends"] < 0.05
    assert r["overlap_coclust_ends"] > 0.3


def _check_applications(r: dict) -> None:
    assert r["anomaly_recall"] >= 0.7
    assert r["anomaly_precision"] >= 0.5
    # flagging 5% of contaminated data is not a 5% false-alarm rate: the anomalies take
    # most of the flags (the text says so)
    assert r["anomaly_false_alarm_rate"] < 0.5 * r["anomaly_alpha"]
    assert 0.0 <= r["ks_heldout_pvalue"] <= 1.0
    assert r["galaxies_k"] >= 3
    assert r["galaxies_min_sd"] > 0.1  # MAP + BIC: no spike on one or two galaxies
    assert r["galaxies_sample_mean_diff"] < 1.0
    assert r["segments_used"] >= 4
    assert len(r["segmented_shape"]) == 3
    assert r["customer_k"] == 3
    assert r["customer_ari"] > 0.8
    assert r["campaign_gain"]["P > 0.2"] >= r["campaign_gain"]["hard label"]


def _check_missing_data(r: dict) -> None:
    from bayesgmm.datasets import load_penguins

    bias = r["demo_bias"]
    # MCAR: both near the target; MAR: complete cases biased, the observed-data
    # likelihood not; MNAR: both biased (the notebook's text says so).
    assert abs(bias["MCAR complete cases"]) < 0.15
    assert abs(bias["MCAR observed-data likelihood"]) < 0.15
    assert abs(bias["MAR complete cases"]) > 0.5
    assert abs(bias["MAR observed-data likelihood"]) < 0.15
    assert abs(bias["MNAR complete cases"]) > 0.5
    assert abs(bias["MNAR observed-data likelihood"]) > 0.5
    iterations = r["demo_iterations"]
    for mechanism in ("MCAR", "MAR", "MNAR"):  # "several times the EM iterations"
        full = iterations[f"{mechanism} observed-data likelihood"]
        assert full >= 2 * iterations[f"{mechanism} complete cases"], mechanism
    # simulated, MCAR: complete cases are fewer and their means noisier
    assert r["sim_complete_rows"] < 0.6
    error = r["sim_mean_error"]
    assert error["observed-data likelihood"] < error["complete cases"]
    assert r["sim_full_better_share"] >= 0.5
    assert min(r["sim_ari"].values()) > 0.6
    # penguins: the numbers printed are those of the bundled data
    X = load_penguins().select_dtypes("number")
    assert r["penguins_rows"] == len(X)
    assert r["penguins_missing"] == X.isna().sum().to_dict()
    assert r["penguins_ari"] > 0.9
    masked = r["penguins_masked"]
    cc, full = masked["complete cases"], masked["observed-data likelihood"]
    assert full["rows fitted"] > 2 * cc["rows fitted"]
    distance = "distance of the means to the reference fit"
    assert full[distance] < cc[distance]
    # "on the data as they are a complete-case fit lands close to the fit above"
    assert r["penguins_original_cc_distance"] < 0.5 * cc[distance]
    assert full["ARI with species, all birds"] > 0.9
    uncertainty = r["uncertainty_by_missing"]
    assert uncertainty["0"] < uncertainty[max(uncertainty, key=int)]
    # plug-in intervals: near nominal, closer with 10 times the rows
    coverage = r["coverage_90"]
    assert all(0.78 < value < 0.97 for value in coverage.values()), coverage
    small = next(v for k, v in coverage.items() if k.startswith("simulated ("))
    assert abs(coverage["simulated, 5000 rows"] - 0.9) < abs(small - 0.9)
    # imputation error: the mixture beats scikit-learn's imputers on both data sets
    for name, rmse in r["rmse"].items():
        others = [v for k, v in rmse.items() if k != "GaussianMixture.impute"]
        assert rmse["GaussianMixture.impute"] < min(others), name
        assert 0.9 < rmse["SimpleImputer (mean)"] < 1.1, name  # "about what the mean gives"
    # the posterior with NaN: the intervals add parameter uncertainty (at least as wide),
    # and both cover near their level
    post = r["posterior_missing"]["posterior (NUTS)"]
    plug = r["posterior_missing"]["plug-in MLE"]
    width = "mean width (sd units)"
    assert post[width] >= 0.98 * plug[width]
    for row in (post, plug):
        assert 0.75 < row["coverage of 90% intervals"] < 0.99, row


def _check_case_study(r: dict) -> None:
    from bayesgmm import GaussianMixture
    from bayesgmm.datasets import load_acidity

    X = load_acidity()
    assert r["n_lakes"] == len(X)
    # BIC and ICL: two components with equal variances (mclust's "E", 2 on these data)
    assert r["bic_choice"] == [2, "tied"]
    assert r["icl_choice"] == [2, "tied"]
    # "LOO cannot tell two components from three": within about one standard error
    assert abs(r["loo_k3_minus_k2_over_se"]) < 2.0
    assert r["max_rhat"] < 1.05
    assert r["divergences"] < 10
    # the posterior means sit at an independent EM fit's, within 3 posterior sd
    mle = GaussianMixture(2, covariance_type="tied", n_init=5, random_state=0).fit(X)
    reference = sorted(mle.means_[:, 0])
    for got, ref, sd in zip(r["post_means"], reference, r["post_sd_of_means"], strict=True):
        assert abs(got - ref) < 3 * sd
    assert r["post_weights"] == pytest.approx(sorted(mle.weights_), abs=0.1)
    assert r["ci_prob"] == 0.89  # the package's one level, named in the report
    assert r["report_mentions_level"]
    # the posterior predictive check passes: most bars inside, no extreme tail probability
    assert r["bins_in_band"] >= 0.7
    assert all(0.02 < p < 0.98 for p in r["ppc_tail_probabilities"].values())
    # "the prior moves the estimates by less than their posterior uncertainty"
    spread = r["sensitivity_spread"]
    assert max(spread["mean 0"], spread["mean 1"]) < min(r["post_sd_of_means"])
    assert spread["sd 0"] < min(r["post_sd_of_sds"])


CHECKS: dict[str, Callable[[dict], None]] = {
    "01_em_from_scratch": _check_em_from_scratch,
    "02_clustering_tour": _check_clustering_tour,
    "03_mle_map_posterior": _check_mle_map_posterior,
    "04_small_data": _check_small_data,
    "05_uncertainty": _check_uncertainty,
    "06_applications": _check_applications,
    "07_missing_data": _check_missing_data,
    "08_case_study": _check_case_study,
}


# -- tests ----------------------------------------------------------------------------------
def test_every_notebook_is_checked():
    assert sorted(CHECKS) == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_clean(path):
    """No outputs in the repository, and the small-settings switch is there."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert 'os.environ.get("BAYESGMM_FAST", "0") == "1"' in code[0].source


def test_kernel_runs_this_python(tmp_path, monkeypatch):
    probe = tmp_path / "probe.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")]
        ),
        probe,
    )
    nb = _run(probe, tmp_path, monkeypatch)
    assert Path(_text(nb.cells[0]).strip()).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = _run(path, tmp_path, monkeypatch)
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out["output_type"] == "error"
    ]
    assert not errors
    CHECKS[path.stem](_results(nb))
