"""Boundary checks. Errors say what was expected and what was received.

Everything past these checks trusts its inputs (house rule 4).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import validate_data

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.init import INIT_METHODS

__all__ = [
    "as_generator",
    "check_data",
    "check_estimator_params",
    "check_initial_params",
    "check_number",
    "check_random_state",
    "check_sample_weight",
    "observed_rows",
    "spd_problem",
]

#: What every ``random_state`` parameter accepts (for the docstrings and errors).
RANDOM_STATE_DOC = "None, an int, a numpy Generator or a RandomState"


def _non_numeric_columns(X) -> list[str]:
    """Names of the non-numeric columns of a DataFrame, else ``[]``."""
    if not (hasattr(X, "dtypes") and hasattr(X, "columns")):
        return []
    from pandas.api.types import is_numeric_dtype

    return [str(name) for name, dtype in X.dtypes.items() if not is_numeric_dtype(dtype)]


def check_data(
    estimator, X, *, reset: bool, min_samples: int = 1, allow_nan: bool = True
) -> np.ndarray:
    """Validate data for ``fit`` (``reset=True``) or for prediction (``reset=False``).

    Returns a C-contiguous array of shape ``(N, D)``: float32 input stays float32 (the
    EM engine's heavy passes then run in float32), anything else becomes float64 (a
    copy where the input would otherwise be shared; the input is never modified).
    Records (at fit) or checks (at prediction) ``n_features_in_`` and
    ``feature_names_in_``. NaN marks a missing value (``allow_nan=True``); at fit a
    column with no observed value is an error naming it. Infinite values are always an error.
    """
    bad_columns = _non_numeric_columns(X)
    if bad_columns:
        raise ValueError(
            f"X has non-numeric columns {bad_columns}; Gaussian mixtures need numeric "
            "features. Select the numeric columns (e.g. df.select_dtypes('number')) or "
            "encode them first."
        )
    if not hasattr(X, "dtypes") and not hasattr(X, "tocsr"):
        kind = np.asarray(X).dtype.kind
        if kind in "OUS":
            try:
                np.asarray(X, dtype=np.float64)
            except ValueError as err:
                raise ValueError(f"X must contain only numbers ({err}).") from None
            except TypeError as err:
                raise TypeError(f"X must contain only numbers ({err}).") from None
    try:
        X = validate_data(
            estimator,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_min_samples=min_samples,
            ensure_all_finite="allow-nan" if allow_nan else True,
            order="C",
        )
    except ValueError as err:
        if allow_nan and "infinity" in str(err):
            raise ValueError(
                "X has infinite values (or values too large for float64); only NaN may "
                "mark a missing value."
            ) from None
        raise
    if allow_nan:
        _check_no_inf(estimator, X)
        if reset:
            _check_observed_columns(estimator, X)
    return X


def _column_name(estimator, j: int) -> str:
    names = getattr(estimator, "feature_names_in_", None)
    return f"column {j} ({names[j]!r})" if names is not None else f"column {j}"


def _check_no_inf(estimator, X: np.ndarray) -> None:
    inf = np.isinf(X)
    if inf.any():
        j = int(np.flatnonzero(inf.any(axis=0))[0])
        raise ValueError(
            f"X has infinite values (first in {_column_name(estimator, j)}); only NaN "
            "may mark a missing value."
        )


def _check_observed_columns(estimator, X: np.ndarray) -> None:
    empty = np.flatnonzero(np.isnan(X).all(axis=0))
    if empty.size:
        which = ", ".join(_column_name(estimator, int(j)) for j in empty)
        raise ValueError(
            f"X has no observed value in {which}: a mixture cannot be fitted to a feature "
            "that is entirely missing. Drop it."
        )


def observed_rows(X: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows with at least one observed (non-NaN) value."""
    return ~np.isnan(X).all(axis=1)


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """Frequency weights: 1-D, one per sample, finite, non-negative, positive total."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("sample_weight must be numeric.") from None
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per sample; got "
            f"shape {w.shape}."
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or infinite values.")
    if np.any(w < 0):
        raise ValueError("sample_weight must be non-negative; got negative weights.")
    if w.sum() <= 0:
        raise ValueError("sample_weight must have a positive sum; all weights are zero.")
    return w


def check_number(name, value, *, integer=False, low=None, low_inclusive=True) -> None:
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a real number"
        raise ValueError(f"`{name}` must be {what}; got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value!r}.")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = f">= {low}" if low_inclusive else f"> {low}"
        raise ValueError(f"`{name}` must be {bound}; got {value!r}.")


def check_estimator_params(est) -> None:
    """Validate the constructor arguments of a ``GaussianMixture``."""
    check_number("n_components", est.n_components, integer=True, low=1)
    get_covariance_model(est.covariance_type)
    check_number("tol", est.tol, low=0.0)
    check_number("reg_covar", est.reg_covar, low=0.0)
    check_number("max_iter", est.max_iter, integer=True, low=0)
    check_number("n_init", est.n_init, integer=True, low=1)
    check_number("verbose", est.verbose, integer=True, low=0)
    check_number("verbose_interval", est.verbose_interval, integer=True, low=1)
    check_number("inner_tol", getattr(est, "inner_tol", 0.0), low=0.0)
    check_number("inner_max_iter", getattr(est, "inner_max_iter", 1), integer=True, low=1)
    if est.init_params not in INIT_METHODS:
        raise ValueError(
            f"Unknown init_params {est.init_params!r}; expected one of {list(INIT_METHODS)}."
        )
    if not isinstance(est.warm_start, bool | np.bool_):
        raise ValueError(f"`warm_start` must be True or False; got {est.warm_start!r}.")


def check_initial_params(
    weights_init, means_init, precisions_init, n_components: int, n_features: int, cov: str
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validate user-given starting values; returns float64 arrays (or ``None``)."""
    model = get_covariance_model(cov)
    if weights_init is not None:
        weights_init = _as_finite_array(weights_init, "weights_init")
        if weights_init.shape != (n_components,):
            raise ValueError(
                f"`weights_init` must have shape ({n_components},); got {weights_init.shape}."
            )
        if np.any(weights_init < 0) or np.any(weights_init > 1):
            raise ValueError(
                f"`weights_init` must lie in [0, 1]; got min {weights_init.min():.6g}, "
                f"max {weights_init.max():.6g}."
            )
        if not np.isclose(weights_init.sum(), 1.0, rtol=0.0, atol=1e-8):
            raise ValueError(
                f"`weights_init` must sum to 1; got a sum of {weights_init.sum():.10g}."
            )
    if means_init is not None:
        means_init = _as_finite_array(means_init, "means_init")
        if means_init.shape != (n_components, n_features):
            raise ValueError(
                f"`means_init` must have shape ({n_components}, {n_features}); got "
                f"{means_init.shape}."
            )
    if precisions_init is not None:
        precisions_init = _as_finite_array(precisions_init, "precisions_init")
        model.check_shape(precisions_init, n_components, n_features, "precisions_init")
        _check_positive_definite(precisions_init, cov)
    return weights_init, means_init, precisions_init


def _as_finite_array(value, name: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be numeric.") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def _random_state_error(random_state) -> ValueError:
    return ValueError(
        f"`random_state` must be {RANDOM_STATE_DOC}; got {random_state!r} "
        f"({type(random_state).__name__})."
    )


def check_random_state(random_state) -> np.random.RandomState:
    """A ``RandomState`` from any accepted ``random_state`` (the one place that parses it).

    ``None`` and ints behave as in :func:`sklearn.utils.check_random_state` (so seeds
    give scikit-learn's starts); a ``RandomState`` is used as is. A
    :class:`numpy.random.Generator` seeds a new ``RandomState`` with one integer drawn
    from it: the generator advances, so repeated calls differ, as they do with a
    ``RandomState`` instance, and the same generator state gives the same result.
    """
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(0, 2**32)))
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= random_state < 2**32:
            raise ValueError(
                f"An integer `random_state` must lie in [0, 2**32 - 1]; got {random_state}."
            )
        return np.random.RandomState(int(random_state))
    raise _random_state_error(random_state)


def as_generator(random_state) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from any accepted ``random_state``.

    A Generator is used as is; an int or ``None`` seeds ``default_rng``; a
    ``RandomState`` gives one integer that seeds ``default_rng``.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    ):
        if random_state is not None and random_state < 0:
            raise ValueError(f"An integer `random_state` must be >= 0; got {random_state}.")
        return np.random.default_rng(random_state)
    raise _random_state_error(random_state)


def spd_problem(matrix: np.ndarray) -> str | None:
    """Why ``matrix`` is not symmetric positive definite (``'not symmetric'``, ``'not
    positive definite ...'``), or ``None`` if it is.

    Judged scale-invariantly, on the correlation form ``D^{-1/2} A D^{-1/2}`` with
    ``D = diag(A)``: a matrix whose variables are in very different units (a diagonal
    of 1e10 and 1e-10) is neither rejected for a rounding-level asymmetry nor for an
    eigenvalue that is small only because of the units, and a tiny matrix is not
    accepted because its asymmetry is below an absolute tolerance. The decision is
    the same for ``S A S`` with any positive diagonal ``S``. Positive definite means
    that the Cholesky factorization of the correlation form succeeds.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        return f"not a square matrix (shape {matrix.shape})"
    diag = np.diag(matrix)
    if np.any(diag <= 0):
        j = int(np.flatnonzero(diag <= 0)[0])
        return f"not positive definite (its diagonal entry [{j}, {j}] is {diag[j]:.6g})"
    inv_sd = 1.0 / np.sqrt(diag)
    scaled = matrix * inv_sd[:, None] * inv_sd[None, :]
    if not np.allclose(scaled, scaled.T, rtol=0.0, atol=1e-8):
        return "not symmetric"
    try:
        np.linalg.cholesky(0.5 * (scaled + scaled.T))
    except np.linalg.LinAlgError:
        return "not positive definite"
    return None


def _check_positive_definite(precisions: np.ndarray, cov: str) -> None:
    # Dispatch on the covariance table's storage (so mclust's names behave as their
    # scikit-learn aliases): variances, one shared matrix, or one matrix per component.
    dims = get_covariance_model(cov).dims
    if "feature_bis" not in dims:
        if np.any(precisions <= 0):
            raise ValueError(
                f"`precisions_init` for covariance_type={cov!r} must be strictly positive."
            )
        return
    shared = dims[0] != "component"
    mats = precisions[None] if shared else precisions
    for k, mat in enumerate(mats):
        which = "" if shared else f"[{k}]"
        problem = spd_problem(mat)
        if problem is not None:
            raise ValueError(
                f"`precisions_init{which}` is {problem}: precisions (inverse covariances) "
                "must be symmetric positive definite matrices."
            )
