"""mclust's fourteen covariance families on the command line (``fit --covariance``,
``select --covariance``): against the Python API at the same settings, and the clear
errors for the methods that cannot take a family."""

from __future__ import annotations

import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from _cli import run_cli as _run

from bayesgmm import GaussianMixture, select_model
from bayesgmm.cli._common import (
    _covariance_list,
    _covariance_name,
    _supported_types,
    expand_covariances,
)
from bayesgmm.cli._main import build_parser
from bayesgmm.core.covariance import (
    COVARIANCE_MODELS,
    COVARIANCE_TYPES,
    MCLUST_FAMILIES,
    MCLUST_UNIVARIATE,
    get_covariance_model,
)
from bayesgmm.datasets import make_mixture

EM = {"n_init": 5, "tol": 1e-6, "max_iter": 1000, "random_state": 0}


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """90 rows, two separated 2-D components with different shapes."""
    sample = make_mixture(90, n_components=2, n_features=2, separation=5, random_state=3)
    X = pd.DataFrame(sample.X * [1.0, 2.5], columns=["x", "y"])
    path = tmp_path_factory.mktemp("families") / "blobs.csv"
    X.to_csv(path, index=False)
    return path, X


def _one_line_error(code: int, stdout: str, stderr: str) -> str:
    assert code == 2, stderr
    assert stdout == ""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def _covariances(table: pd.DataFrame, column: str, model) -> np.ndarray:
    """The ``covariances`` rows of estimates.csv in the table's storage shape (the
    family's ``dims``: one row per component and feature, or per feature pair)."""
    rows = table[table["parameter"] == "covariances"]
    k, d = model.means_.shape
    table_model = get_covariance_model(model.covariance_type)
    names = list(model.feature_names_in_)
    out = np.full(table_model.shape(k, d), np.nan)
    for _, row in rows.iterrows():
        where = [int(row["component"])] if table_model.dims[0] == "component" else []
        if isinstance(row["feature"], str):
            where.append(names.index(row["feature"]))
        if isinstance(row["feature_bis"], str):
            where.append(names.index(row["feature_bis"]))
        out[tuple(where)] = row[column]
    return out


# -- the names ---------------------------------------------------------------------------
def test_every_table_name_parses_to_itself_in_any_case():
    for name in COVARIANCE_MODELS:
        for text in (name, name.lower(), name.upper(), f" {name} "):
            assert _covariance_name(text) == name


def test_all_keeps_meaning_the_four_and_mclust_the_fourteen():
    assert _covariance_list("all") == COVARIANCE_TYPES
    default = build_parser().parse_args(["select", "d.csv", "--out", "o"]).covariance
    assert expand_covariances(default, 2) == list(COVARIANCE_TYPES)
    assert expand_covariances(_covariance_list("mclust"), 3) == list(MCLUST_FAMILIES)
    assert expand_covariances(_covariance_list("MCLUST"), 1) == list(MCLUST_UNIVARIATE)
    # two names of one model count once, the first spelling kept
    assert expand_covariances(_covariance_list("full,VVV,vev,all"), 2) == [
        "full", "VEV", "tied", "diag", "spherical",
    ]  # fmt: skip


def test_help_says_which_methods_take_which_types():
    """The help text of ``fit --covariance`` (written out, so that --help needs no PyMC)
    says what the library's checks say."""
    from bayesgmm.cli._fit import _METHOD_TYPES

    parts = dict.fromkeys(("posterior", "map", "information"))
    for segment in _METHOD_TYPES.split(";"):
        words = re.findall(r"[A-Za-z]+", segment)
        names = {w for w in words if w in COVARIANCE_MODELS}
        if words[:3] == ["posterior", "and", "laplace"]:
            parts["posterior"] = names
        elif words[:3] == ["map", "all", "but"]:
            parts["map"] = set(COVARIANCE_MODELS) - names
        elif words[0] == "information":
            parts["information"] = names
    assert set(_supported_types("posterior")) == parts["posterior"]
    assert set(_supported_types("laplace")) == parts["posterior"]
    assert set(_supported_types("map")) == parts["map"]
    assert set(_supported_types("information")) == parts["information"]
    assert set(_supported_types("mle")) == set(COVARIANCE_MODELS)


# -- fit ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "name", "methods"),
    [
        ("EII", "EII", "mle,map"),  # one variance, stored per component and feature
        ("vei", "VEI", "mle,map"),  # given in lower case
        ("EEV", "EEV", "mle,map"),  # oriented: full matrices
        ("VEE", "VEE", "mle"),  # no conjugate prior
    ],
)
def test_fit_mclust_family_equals_the_api(blobs, tmp_path, typed, name, methods):
    path, X = blobs
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        ["fit", str(path), "--components", "2", "--covariance", typed, "--methods", methods,
         "--bootstrap", "0", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    assert f"covariance type: {name}" in stdout
    # the prior line says the prior is evaluated on the family (no MAP, no prior line)
    note = f"For {name} ({name}) the covariance prior is that density evaluated on the family"
    assert (note in stdout) == ("map" in methods)
    table = pd.read_csv(out / "estimates.csv")
    models = joblib.load(out / "models.joblib")
    assert sorted(models) == sorted(methods.split(","))
    for method in models:
        prior = "default" if method == "map" else None
        direct = GaussianMixture(2, covariance_type=name, prior=prior, **EM).fit(X)
        saved = models[method]
        assert saved.covariance_type == name
        # components renumbered to the MLE's (MAP): match them by their means
        rows = table[table["parameter"] == "means"]
        means = rows.pivot(index="component", columns="feature", values=method)[["x", "y"]]
        perm = [int(np.argmin(((direct.means_ - m) ** 2).sum(axis=1))) for m in means.values]
        assert sorted(perm) == [0, 1]
        np.testing.assert_allclose(means.to_numpy(), direct.means_[perm], rtol=1e-10)
        weights = table[table["parameter"] == "weights"].sort_values("component")[method]
        np.testing.assert_allclose(weights.to_numpy(), direct.weights_[perm], rtol=1e-10)
        covariances = direct.covariances_
        if get_covariance_model(name).dims[0] == "component":
            covariances = covariances[perm]
        np.testing.assert_allclose(
            _covariances(table, method, saved), covariances, rtol=1e-10, atol=1e-12
        )
        np.testing.assert_allclose(saved.covariances_, covariances, rtol=1e-10, atol=1e-12)


def test_fit_one_feature_takes_e_and_v(tmp_path):
    sample = make_mixture(80, n_components=2, n_features=1, separation=5, random_state=1)
    X = pd.DataFrame(sample.X, columns=["x"])
    path = tmp_path / "one.csv"
    X.to_csv(path, index=False)
    code, _, stderr = _run(
        ["fit", str(path), "--components", "2", "--covariance", "e", "--methods", "mle",
         "--bootstrap", "0", "--quiet", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0, stderr
    saved = joblib.load(tmp_path / "out" / "models.joblib")["mle"]
    direct = GaussianMixture(2, covariance_type="E", **EM).fit(X)
    assert saved.covariance_type == "E"
    np.testing.assert_allclose(np.sort(saved.means_[:, 0]), np.sort(direct.means_[:, 0]))
    np.testing.assert_allclose(saved.covariances_, direct.covariances_, rtol=1e-10)


@pytest.mark.parametrize(
    ("covariance", "methods", "refused", "instead"),
    [
        ("VEV", None, "posterior", "--methods mle,map "),  # the default methods
        ("VEE", "mle,map", "map", "--methods mle "),
        ("EEV", "mle,map,laplace", "laplace", "--methods mle,map "),
        ("EII", "mle,information", "information", "--methods mle "),
    ],
)
def test_fit_refuses_a_family_a_method_cannot_take(
    blobs, tmp_path, monkeypatch, covariance, methods, refused, instead
):
    def no_fitting(*args, **kwargs):
        raise AssertionError("fitted before refusing")

    monkeypatch.setattr(GaussianMixture, "fit", no_fitting)
    path, _ = blobs
    extra = [] if methods is None else ["--methods", methods]
    out = tmp_path / "out"
    line = _one_line_error(
        *_run(["fit", str(path), "--components", "2", "--covariance", covariance, *extra,
               "--quiet", "--out", str(out)])
    )  # fmt: skip
    assert line.startswith(f"bayesgmm fit: error: --covariance {covariance} cannot be fitted by")
    assert f"by {refused} (--methods)" in line
    assert instead in line
    takes = line.split("can take: ")[1].split(". Why")[0].split(", ")
    assert takes == _supported_types(refused)
    assert not out.exists()


def test_fit_unknown_covariance_lists_the_names(blobs, tmp_path):
    path, _ = blobs
    line = _one_line_error(
        *_run(["fit", str(path), "--components", "2", "--covariance", "VXV", "--quiet",
               "--out", str(tmp_path / "out")])
    )  # fmt: skip
    assert "argument --covariance: unknown covariance type 'VXV'" in line
    for name in COVARIANCE_MODELS:
        assert re.search(rf"\b{name}\b", line), name


def test_standardize_takes_the_families_closed_under_scaling(blobs, tmp_path):
    path, X = blobs
    line = _one_line_error(
        *_run(["fit", str(path), "--components", "2", "--covariance", "EVE", "--methods",
               "mle", "--standardize", "--quiet", "--out", str(tmp_path / "no")])
    )  # fmt: skip
    assert "--standardize does not work with EVE" in line
    closed = [n for n, m in COVARIANCE_MODELS.items() if m.scale_equivariant and len(n) > 1]
    assert line.endswith(", ".join(closed))
    # VEE (oriented, closed): the MLE is the linear map of the fit to standardized data
    out = tmp_path / "out"
    code, _, stderr = _run(
        ["fit", str(path), "--components", "2", "--covariance", "VEE", "--methods", "mle",
         "--bootstrap", "0", "--standardize", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    m, s = X.mean().to_numpy(), X.std(ddof=0).to_numpy()
    direct = GaussianMixture(2, covariance_type="VEE", **EM).fit((X - m) / s)
    mle = joblib.load(out / "models.joblib")["mle"]
    np.testing.assert_allclose(mle.means_, m + direct.means_ * s, rtol=1e-10)
    np.testing.assert_allclose(mle.covariances_, direct.covariances_ * np.outer(s, s), rtol=1e-10)
    np.testing.assert_allclose(mle.score(X), direct.score((X - m) / s) - np.log(s).sum())


# -- select ------------------------------------------------------------------------------
@pytest.mark.parametrize("n_features", [2, 1])
def test_select_mclust_equals_select_model(blobs, tmp_path, n_features):
    path, X = blobs
    if n_features == 1:
        X = X[["y"]]
        path = tmp_path / "one.csv"
        X.to_csv(path, index=False)
    out = tmp_path / "out"
    code, _, stderr = _run(
        ["select", str(path), "--components", "1-2", "--covariance", "mclust", "--quiet",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0, stderr
    table = pd.read_csv(out / "selection.csv", keep_default_na=False, na_values=[""])
    mle = select_model(X, [1, 2], "all", n_init=5, random_state=0).table
    map_ = select_model(X, [1, 2], "all", n_init=5, random_state=0, prior="default").table
    families = MCLUST_FAMILIES if n_features > 1 else MCLUST_UNIVARIATE
    assert list(dict.fromkeys(table["covariance_type"])) == list(families)
    assert list(table["covariance_type"]) == list(mle["covariance_type"])
    assert list(table["n_components"]) == list(mle["n_components"])
    for criterion in ("bic", "aic", "icl"):
        np.testing.assert_allclose(table[criterion], mle[criterion], rtol=1e-10)
        np.testing.assert_allclose(table[f"{criterion}_map"], map_[criterion], rtol=1e-10)
    # the MAP cells of the families without a conjugate prior failed, and say why once
    failed = table["error_map"].notna()
    no_prior = [not get_covariance_model(c).supports_prior for c in table["covariance_type"]]
    assert list(failed) == no_prior
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    if any(no_prior):
        assert summary.count("has no conjugate prior") == 4  # VEE, EVE, VVE, EVV: one each
        assert "\nErrors:\n  [1] ValueError: covariance_type='EVE' has no conjugate" in summary
    match = re.search(r"^  bic\s+K=(\d+), (\w+)", summary, flags=re.MULTILINE)
    best = mle.loc[mle["bic"].idxmin()]
    assert (int(match[1]), match[2]) == (best["n_components"], best["covariance_type"])


def test_select_posterior_refuses_the_families_it_cannot_sample(blobs, tmp_path, monkeypatch):
    import bayesgmm.selection

    def no_fitting(*args, **kwargs):
        raise AssertionError("fitted before refusing")

    monkeypatch.setattr(bayesgmm.selection, "select_model", no_fitting)
    path, _ = blobs
    line = _one_line_error(
        *_run(["select", str(path), "--components", "1-2", "--covariance", "mclust",
               "--posterior", "--quiet", "--out", str(tmp_path / "out")])
    )  # fmt: skip
    cannot = [c for c in MCLUST_FAMILIES if c not in _supported_types("posterior")]
    assert cannot == ["EVE", "VEE", "VVE", "EEV", "VEV", "EVV"]
    assert f"--posterior cannot sample {', '.join(cannot)}; leave out --posterior" in line
    kept = [c for c in MCLUST_FAMILIES if c not in cannot]
    assert f"--covariance {','.join(kept)} " in line


def test_select_unknown_covariance(blobs, tmp_path):
    path, _ = blobs
    line = _one_line_error(
        *_run(["select", str(path), "--covariance", "full,round", "--quiet",
               "--out", str(tmp_path / "out")])
    )  # fmt: skip
    assert "unknown covariance type 'round'; choose 'all' (scikit-learn's four), 'mclust'" in line


# -- the library's checks that the CLI asks ---------------------------------------------
def test_information_and_laplace_checks_agree_with_the_methods(blobs):
    """check_information_type / check_laplace_type refuse exactly the families that
    observed_information / laplace refuse, with the same message."""
    from bayesgmm import laplace, observed_information
    from bayesgmm._laplace import check_laplace_type
    from bayesgmm.information import check_information_type

    _, X = blobs
    X = X.iloc[:40]
    for name in ("VVV", "EII", "EEV", "VEV"):
        fit = GaussianMixture(2, covariance_type=name, random_state=0, n_init=1).fit(X)
        try:
            check_information_type(name)
        except ValueError as err:
            with pytest.raises(ValueError, match=re.escape(str(err))):
                observed_information(fit, X)
        else:
            observed_information(fit, X)
        if name in ("EEV", "VEV"):  # MAP fits exist, the Laplace approximation does not
            fit = GaussianMixture(2, covariance_type=name, prior="default", n_init=1).fit(X)
            with pytest.raises(ValueError, match="Laplace approximation") as checked:
                check_laplace_type(name)
            with pytest.raises(ValueError, match=re.escape(str(checked.value))):
                laplace(fit, X, draws=10)
    assert check_laplace_type("VVV") == "full"
