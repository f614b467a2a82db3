"""Tests for the bundled data-set loaders in :mod:`bayesgmm.datasets`.

Reference values come from ``bayesgmm/datasets/data/SOURCES.md`` (R's printed summaries,
the mclust documentation and Richardson & Green 1997), not from the CSV files themselves.
"""

from __future__ import annotations

import csv
import doctest
import inspect
from collections.abc import Callable
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

import bayesgmm.datasets as ds
from bayesgmm.datasets import _loaders

LOADERS: dict[str, Callable[[], pd.DataFrame]] = {
    name.removeprefix("load_"): getattr(ds, name)
    for name in dir(ds)
    if name.startswith("load_") and callable(getattr(ds, name))
}

# name -> (rows, numeric columns, {categorical column: categories});
# the label column comes last for iris and first elsewhere, as in the source files.
EXPECTED: dict[str, tuple[int, list[str], dict[str, list[str]]]] = {
    "faithful": (272, ["eruptions", "waiting"], {}),
    "galaxies": (82, ["velocity_kkms"], {}),
    "acidity": (155, ["acidity"], {}),
    "enzyme": (245, ["enzyme"], {}),
    "iris": (
        150,
        ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        {"species": ["setosa", "versicolor", "virginica"]},
    ),
    "diabetes": (145, ["fpg", "glucose", "insulin"], {"class": ["Normal", "Chemical", "Overt"]}),
    "banknote": (
        200,
        ["length", "left", "right", "bottom", "top", "diagonal"],
        {"status": ["genuine", "counterfeit"]},
    ),
    "thyroid": (
        215,
        ["RT3U", "T4", "T3", "TSH", "DTSH"],
        {"diagnosis": ["Normal", "Hyper", "Hypo"]},
    ),
    "wreath": (1000, ["x1", "x2"], {}),
    "trees": (31, ["girth", "height", "volume"], {}),
    "precip": (70, ["precip"], {}),
    "penguins": (
        344,
        [
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "body_mass_g",
            "delta_15n",
            "delta_13c",
        ],
        {
            "species": ["Adelie", "Chinstrap", "Gentoo"],
            "island": ["Biscoe", "Dream", "Torgersen"],
            "sex": ["female", "male"],
        },
    ),
}
# name -> columns that may hold missing values (NaN / a missing label); none elsewhere.
MAY_BE_MISSING: dict[str, set[str]] = {
    "penguins": {
        "sex",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "delta_15n",
        "delta_13c",
    },
}


def test_expected_table_covers_every_loader() -> None:
    assert set(LOADERS) == set(EXPECTED)


def test_list_datasets_covers_every_loader() -> None:
    names = ds.list_datasets()
    assert names == sorted(names)
    assert names == sorted(LOADERS)
    assert len(names) == 12
    for name in names:
        assert callable(getattr(ds, f"load_{name}"))


def test_all_exports() -> None:
    assert set(ds.__all__) == {
        "list_datasets",
        "make_mixture",
        "MixtureSample",
        *(f"load_{n}" for n in LOADERS),
    }
    for name in ds.__all__:
        assert hasattr(ds, name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_columns_and_dtypes(name: str) -> None:
    n_rows, numeric, categorical = EXPECTED[name]
    df = LOADERS[name]()
    assert isinstance(df, pd.DataFrame)
    expected_columns = [*numeric, *categorical] if name == "iris" else [*categorical, *numeric]
    assert list(df.columns) == expected_columns
    assert df.shape == (n_rows, len(categorical) + len(numeric))
    assert isinstance(df.index, pd.RangeIndex)
    assert df.index.start == 0
    assert df.index.step == 1
    may_be_missing = MAY_BE_MISSING.get(name, set())
    for col in numeric:
        assert df[col].dtype == np.float64, col
        values = df[col].to_numpy()
        assert not np.isinf(values).any(), col
        if col not in may_be_missing:
            assert np.isfinite(values).all(), col
    for col, levels in categorical.items():
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
        assert list(df[col].cat.categories) == levels
        if col not in may_be_missing:
            assert not df[col].isna().any()
    assert set(df.columns[df.isna().any()]) <= may_be_missing


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_returns_fresh_copy(name: str) -> None:
    first = LOADERS[name]()
    col = EXPECTED[name][1][0]
    first.loc[0, col] = -1.0e9
    assert LOADERS[name]().loc[0, col] != -1.0e9


def test_galaxies_mass_version_dtypes() -> None:
    df = ds.load_galaxies(version="mass")
    assert list(df.columns) == ["velocity_kms"]
    assert df.shape == (82, 1)
    assert df["velocity_kms"].dtype == np.float64
    assert not df.isna().any().any()


def test_faithful_means() -> None:
    means = ds.load_faithful().mean()
    assert means["eruptions"] == pytest.approx(3.487783, abs=5e-7)
    assert means["waiting"] == pytest.approx(70.897059, abs=5e-7)


def test_galaxies_versions_differ_only_at_obs_78() -> None:
    rg97 = ds.load_galaxies()["velocity_kkms"].to_numpy()
    assert np.array_equal(rg97, ds.load_galaxies(version="rg97")["velocity_kkms"].to_numpy())
    mass = ds.load_galaxies(version="mass")["velocity_kms"].to_numpy()
    assert rg97.shape == mass.shape == (82,)
    assert rg97[77] == pytest.approx(26.960, abs=1e-12)
    assert mass[77] == 26690.0
    differ = ~np.isclose(rg97 * 1000.0, mass, rtol=0.0, atol=1e-6)
    assert np.flatnonzero(differ).tolist() == [77]
    assert mass.mean() == pytest.approx(20828.17, abs=0.005)


@pytest.mark.parametrize("version", ["RG97", "MASS", "", "nmix", None, 1997])
def test_galaxies_invalid_version(version: object) -> None:
    with pytest.raises(ValueError, match=r"'rg97'.*'mass'"):
        ds.load_galaxies(version=version)  # type: ignore[arg-type]


def test_galaxies_signature_default() -> None:
    assert inspect.signature(ds.load_galaxies).parameters["version"].default == "rg97"


def test_iris_species_counts() -> None:
    counts = ds.load_iris()["species"].value_counts()
    assert counts.to_dict() == {"setosa": 50, "versicolor": 50, "virginica": 50}


def test_trees_column_means() -> None:
    means = ds.load_trees().mean().round(3)
    assert means.tolist() == [13.248, 76.000, 30.171]


def test_diabetes_corrected() -> None:
    df = ds.load_diabetes()
    assert df["class"].value_counts().to_dict() == {"Normal": 76, "Chemical": 36, "Overt": 33}
    # observation 104 (1-based): the legacy typo 45 is corrected to 455
    assert df["glucose"].iloc[103] == 455.0
    assert (df["glucose"] != 45.0).all()


def test_thyroid_diagnosis_counts() -> None:
    counts = ds.load_thyroid()["diagnosis"].value_counts().to_dict()
    assert counts == {"Normal": 150, "Hyper": 35, "Hypo": 30}


def test_banknote_status_counts() -> None:
    counts = ds.load_banknote()["status"].value_counts().to_dict()
    assert counts == {"genuine": 100, "counterfeit": 100}


def _penguins_file() -> tuple[list[str], list[list[str]]]:
    """The shipped penguins.csv parsed by the csv module: header and rows of strings."""
    resource = files("bayesgmm.datasets") / "data" / "penguins.csv"
    with resource.open("r", encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


def test_penguins_missing_values_are_those_of_the_file() -> None:
    header, rows = _penguins_file()
    df = ds.load_penguins()
    assert len(rows) == len(df) == 344
    assert all(len(row) == len(header) for row in rows)
    assert header == list(df.columns)
    for j, column in enumerate(header):
        in_file = np.array([row[j] == "NA" for row in rows])
        np.testing.assert_array_equal(df[column].isna().to_numpy(), in_file, err_msg=column)
        if df[column].dtype == np.float64:
            observed = [float(row[j]) for row in rows if row[j] != "NA"]
            np.testing.assert_array_equal(df[column].dropna().to_numpy(), observed)
        else:
            labels = [row[j] for row in rows if row[j] != "NA"]
            assert df[column].dropna().astype(str).tolist() == labels


def test_penguins_counts_documented_in_sources() -> None:
    # SOURCES.md and the palmerpenguins documentation: 152 / 68 / 124 birds; missing
    # values 2 per size column (the same two birds, with nothing measured), 14 delta 15N,
    # 13 delta 13C, 11 sex.
    df = ds.load_penguins()
    counts = df["species"].value_counts().to_dict()
    assert counts == {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124}
    X = df.select_dtypes("number")
    missing = X.isna().sum().to_dict()
    assert missing == {
        "bill_length_mm": 2,
        "bill_depth_mm": 2,
        "flipper_length_mm": 2,
        "body_mass_g": 2,
        "delta_15n": 14,
        "delta_13c": 13,
    }
    assert int(df["sex"].isna().sum()) == 11
    assert int(X.isna().all(axis=1).sum()) == 2


def test_reader_rejects_missing_values_unless_allowed() -> None:
    measurements = list(EXPECTED["penguins"][1])
    labels = {c: (c, levels) for c, levels in EXPECTED["penguins"][2].items()}
    with pytest.raises(ValueError, match="'sex' has missing or unknown labels"):
        _loaders._read_csv("penguins.csv", {c: c for c in measurements}, labels)
    allowed = {"sex", *measurements[1:]}
    with pytest.raises(ValueError, match="'bill_length_mm' has missing values"):
        _loaders._read_csv(
            "penguins.csv", {c: c for c in measurements}, labels, allow_missing=allowed
        )


def test_reader_rejects_unexpected_columns() -> None:
    with pytest.raises(ValueError, match="expected columns"):
        _loaders._read_csv("faithful.csv", {"eruptions": "eruptions"})


def test_reader_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match="unknown labels"):
        _loaders._read_csv(
            "thyroid.csv",
            {c: c for c in ("RT3U", "T4", "T3", "TSH", "DTSH")},
            {"Diagnosis": ("diagnosis", ("Normal", "Hyper"))},
        )


def test_docstring_examples() -> None:
    result = doctest.testmod(_loaders, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_make_mixture_draws_from_the_stated_parameters() -> None:
    from scipy import stats

    from bayesgmm.core.covariance import get_covariance_model

    for cov_type in ("full", "tied", "diag", "spherical"):
        data = ds.make_mixture(
            6000, n_components=3, n_features=2, covariance_type=cov_type, random_state=1
        )
        params = data.params
        assert data.covariance_type == cov_type
        np.testing.assert_allclose(params.weights.sum(), 1.0)
        full = get_covariance_model(cov_type).to_full(params.covariances, 3, 2)
        for k in range(3):
            rows = data.X[data.labels == k]
            # label frequencies and per-component moments agree with the truth
            share = len(rows) / 6000
            assert abs(share - params.weights[k]) < 4 * np.sqrt(share * (1 - share) / 6000)
            se = np.sqrt(np.diag(full[k]) / len(rows))
            assert np.all(np.abs(rows.mean(0) - params.means[k]) < 4.5 * se)
            np.testing.assert_allclose(np.cov(rows.T), full[k], atol=0.15)
        # the first coordinate of each component is normal (KS test)
        z = (data.X[data.labels == 0, 0] - params.means[0, 0]) / np.sqrt(full[0, 0, 0])
        assert stats.kstest(z, "norm").pvalue > 1e-3


def test_make_mixture_given_parameters_and_errors() -> None:
    data = ds.make_mixture(
        50,
        n_components=2,
        n_features=1,
        weights=[0.5, 0.5],
        means=[[-10.0], [10.0]],
        covariances=[1.0, 1.0],
        covariance_type="spherical",
        random_state=0,
    )
    assert np.all((data.X[:, 0] > 0) == (data.labels == 1))
    again = ds.make_mixture(
        50,
        n_components=2,
        n_features=1,
        weights=[0.5, 0.5],
        means=[[-10.0], [10.0]],
        covariances=[1.0, 1.0],
        covariance_type="spherical",
        random_state=0,
    )
    np.testing.assert_array_equal(data.X, again.X)
    with pytest.raises(ValueError, match="must sum to 1"):
        ds.make_mixture(10, n_components=2, weights=[0.2, 0.2])
    with pytest.raises(ValueError, match="`n_samples` must be a positive integer"):
        ds.make_mixture(0)
    with pytest.raises(ValueError, match=r"`covariances` .* must have shape \(2, 2\)"):
        ds.make_mixture(10, n_components=2, covariance_type="diag", covariances=np.ones(2))
