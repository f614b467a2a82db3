"""Model selection over a grid of (n_components, covariance_type), as mclust's BIC table."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from bayesgmm._degeneracy import DegenerateFitWarning, degeneracy_message
from bayesgmm._validation import (
    check_data,
    check_random_state,
    check_sample_weight,
    observed_rows,
)
from bayesgmm.core.covariance import (
    COVARIANCE_TYPES,
    expand_covariance_types,
    get_covariance_model,
)
from bayesgmm.core.split import split_component, split_directions, split_order
from bayesgmm.mixture import GaussianMixture

__all__ = ["ModelSelection", "SelectionError", "select_model"]

_CRITERIA = ("bic", "aic", "icl")
#: Log-likelihoods within this relative distance count as equal for ``monotone``.
_MONOTONE_RTOL = 1e-9


class SelectionError(ValueError):
    """Every fit of a :func:`select_model` grid failed.

    Attributes
    ----------
    table : pandas.DataFrame
        The grid, as :attr:`ModelSelection.table`, with each cell's ``error``.
    """

    def __init__(self, message: str, table: pd.DataFrame) -> None:
        super().__init__(message)
        self.table = table


@dataclass(frozen=True)
class ModelSelection:
    """Result of :func:`select_model`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (n_components, covariance_type): ``mclust_name``,
        ``log_likelihood``, ``n_parameters``, ``bic``, ``aic``, ``icl`` (lower is
        better), ``converged``, ``n_iter``, ``start`` (where the fit started:
        the ``init_params`` method, or ``'split j of K=k'`` / ``'copy j of K=k'``
        for a cell refitted from the smaller fit's component ``j``, see ``monotone``
        in :func:`select_model`), ``error`` (why a fit failed, as
        ``'ExceptionType: message'``; its criteria are NaN, as mclust's NA) and
        ``degenerate`` (what is degenerate about the fit, see
        :class:`~bayesgmm.DegenerateFitWarning`; ``''`` if nothing).
    best_estimator : GaussianMixture
        The fitted model with the lowest ``criterion``.
    criterion : str
        The criterion used to choose.
    """

    table: pd.DataFrame
    best_estimator: GaussianMixture
    criterion: str

    @property
    def best_params(self) -> dict:
        """``n_components`` and ``covariance_type`` of the chosen model."""
        return {
            "n_components": self.best_estimator.n_components,
            "covariance_type": self.best_estimator.covariance_type,
        }

    def grid(self, criterion: str | None = None) -> pd.DataFrame:
        """The criterion as a K-by-covariance-type table (mclust's ``BIC`` layout)."""
        criterion = criterion or self.criterion
        return self.table.pivot(index="n_components", columns="covariance_type", values=criterion)


def select_model(
    X,
    n_components: Iterable[int] = range(1, 10),
    covariance_types: Iterable[str] = COVARIANCE_TYPES,
    *,
    criterion: str = "bic",
    n_init: int = 5,
    tol: float = 1e-6,
    max_iter: int = 1000,
    random_state=None,
    sample_weight=None,
    progress: bool = False,
    monotone: bool = True,
    **params,
) -> ModelSelection:
    """Fit every (n_components, covariance_type) pair and tabulate BIC, AIC and ICL.

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components : iterable of int, default=range(1, 10)
    covariance_types : iterable of str or 'all', default=scikit-learn's four
        ``'all'``: mclust's fourteen families (E and V for one feature), as
        ``mclustBIC``; with ``init_params='hc'`` also from mclust's start.
        ``covariance_type=`` is accepted as another name for this argument.
    criterion : {'bic', 'aic', 'icl'}, default='bic'
        Criterion that picks ``best_estimator`` (lower is better).
    n_init : int, default=5
        Starts per fit.
    tol, max_iter : float, int, default=1e-6, 1000
        EM convergence settings, tighter than :class:`GaussianMixture`'s defaults
        (as mclust's), because the criteria compare maxima of the likelihood.
    random_state : int, numpy Generator, RandomState or None
        Seeds every fit reproducibly (each cell gets its own seed, drawn from it; with
        ``init_params='hc'`` all cells get one seed, so that above 2000 rows they
        share mclust's random subset and its one hierarchical tree, as ``mclustBIC``).
    sample_weight : array-like of shape (N,), optional
        Frequency weights passed to every fit.
    progress : bool, default=False
        Print one line per fit to stderr.
    monotone : bool, default=True
        Within a covariance type the maximized log-likelihood cannot fall as K grows
        (a K + 1 model can reach the K model's: split one of its components in two).
        When a K fit ends below the K - 1 fit of its type (relative tolerance 1e-9),
        or fails, it is refitted from the K - 1 fit with one component split in two
        (:mod:`bayesgmm.core.split`: the components in the order of the likelihood
        gain of splitting them, then weight; halves of its weight, means half a
        standard deviation either side along the main axis of its points, then 0.05);
        the first refit that reaches the K - 1 fit is kept (else the best one; as a
        last resort two copies of the heaviest component, exactly the K - 1
        likelihood). So the table's log-likelihood never falls with K, and a
        repaired cell's is only ever higher than its fit from ``init_params``. The
        ``start`` column says which cells were refitted. Needs the smaller K earlier
        in ``n_components`` (ascending order, as the default). Maximum likelihood only:
        with a ``prior`` each K maximizes its own posterior (the default prior changes
        with K), whose likelihood need not grow with K, so no cell is refitted.
    **params
        Other :class:`GaussianMixture` parameters (``tol``, ``reg_covar``, ...).

    Returns
    -------
    ModelSelection

    Raises
    ------
    SelectionError
        If every cell failed; the message names the cells and their errors, and
        the exception carries the ``table``. A failing cell otherwise only gets
        NaN criteria and its ``error``; the other cells are unaffected.

    Warns
    -----
    DegenerateFitWarning
        If the chosen model is degenerate (the fits of the other cells do not warn:
        their findings are in the table's ``degenerate`` column).

    Examples
    --------
    >>> from bayesgmm import select_model
    >>> from bayesgmm.datasets import load_faithful
    >>> sel = select_model(load_faithful(), range(1, 4), ["tied", "full"], random_state=0)
    >>> sel.best_params
    {'n_components': 3, 'covariance_type': 'tied'}
    >>> sel.grid().shape
    (3, 2)
    """
    if criterion not in _CRITERIA:
        raise ValueError(f"Unknown criterion {criterion!r}; expected one of {list(_CRITERIA)}.")
    ks = [int(k) for k in n_components]
    if not ks or min(ks) < 1:
        raise ValueError(f"n_components must be a non-empty list of integers >= 1; got {ks}.")
    if "covariance_type" in params:
        covariance_types = params.pop("covariance_type")
    n_features = np.shape(np.asarray(X) if not hasattr(X, "shape") else X)
    n_features = n_features[1] if len(n_features) > 1 else 1
    types = expand_covariance_types(covariance_types, n_features)
    for cov in types:
        get_covariance_model(cov)
    base = GaussianMixture(n_init=n_init, tol=tol, max_iter=max_iter, **params)
    data = X  # fitted as given, so the models keep DataFrame feature names
    X = check_data(base, X, reset=True, min_samples=2)
    sample_weight = check_sample_weight(sample_weight, X.shape[0])
    keep = observed_rows(X)
    if not keep.all():
        # Rows with nothing observed carry no information: said once, not once per cell.
        warnings.warn(
            f"{int((~keep).sum())} of {X.shape[0]} rows have no observed value (all NaN) "
            "and carry no information: every fit of the grid ignores them.",
            UserWarning,
            stacklevel=2,
        )
        X = X[keep]
        data = data.iloc[np.flatnonzero(keep)] if hasattr(data, "iloc") else X
        sample_weight = None if sample_weight is None else sample_weight[keep]
    rng = check_random_state(random_state)

    rows, fitted, cache = [], {}, {}
    # A MAP fit maximizes likelihood + log prior, and the prior changes with K (mclust's
    # default scale shrinks as K grows): nothing makes its likelihood monotone in K.
    repair = monotone and base.prior is None
    total = len(ks) * len(types)
    # mclust's start clusters one subset (above 2000 rows) once for the whole grid: with
    # init_params='hc' every cell gets the same seed, so the same subset and its one
    # hierarchical tree (cached in core/hc.py).
    shared_seed = int(rng.randint(np.iinfo(np.int32).max)) if base.init_params == "hc" else None
    for i, (cov, k) in enumerate((c, k) for c in types for k in ks):
        seed = shared_seed if shared_seed is not None else int(rng.randint(np.iinfo(np.int32).max))
        model = clone(base).set_params(n_components=k, covariance_type=cov, random_state=seed)
        row = {
            "n_components": k,
            "covariance_type": cov,
            "mclust_name": get_covariance_model(cov).mclust_name,
        }
        try:
            if k > X.shape[0]:
                raise ValueError(f"n_components={k} exceeds the {X.shape[0]} samples")
            smaller = fitted.get((k - 1, cov)) if repair else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", DegenerateFitWarning)
                try:
                    model.fit(data, sample_weight=sample_weight)
                except Exception as err:
                    if smaller is None:
                        raise
                    # The K - 1 fit split in two is a K model: the cell need not fail.
                    model, start = _not_below(None, smaller, data, X, sample_weight, cache, err)
                else:
                    start = str(base.init_params)
                    if smaller is not None:
                        model, start = _not_below(model, smaller, data, X, sample_weight, cache)
                criteria = _criteria(model, X, sample_weight, cache)
        except Exception as err:  # one cell's failure must not sink the others
            row.update(
                log_likelihood=np.nan,
                n_parameters=np.nan,
                bic=np.nan,
                aic=np.nan,
                icl=np.nan,
                converged=False,
                n_iter=0,
                start="",
                error=f"{type(err).__name__}: {err}",
                degenerate="",
            )
        else:
            row.update(
                **criteria,
                n_parameters=model.n_parameters(),
                converged=model.converged_,
                n_iter=model.n_iter_,
                start=start,
                error="",
                degenerate=_degeneracy_text(model),
            )
            fitted[(k, cov)] = model
        rows.append(row)
        if progress:
            print(
                f"[{i + 1}/{total}] K={k} {cov:<9} {criterion.upper()}={row[criterion]:.3f}",
                file=sys.stderr,
            )
    table = pd.DataFrame(rows)
    if table[criterion].isna().all():
        raise SelectionError(_all_failed_message(table), table)
    best = table.loc[table[criterion].idxmin()]
    chosen = fitted[(int(best["n_components"]), best["covariance_type"])]
    if best["degenerate"]:
        warnings.warn(
            f"The model chosen by {criterion.upper()} (K={chosen.n_components}, "
            f"{chosen.covariance_type!r}) is degenerate. {best['degenerate']}",
            DegenerateFitWarning,
            stacklevel=2,
        )
    return ModelSelection(table=table, best_estimator=chosen, criterion=criterion)


def _criteria(model: GaussianMixture, X: np.ndarray, sample_weight, cache: dict) -> dict:
    """``model.information_criteria`` on the validated array (a DataFrame's validation
    costs more than the criteria on small data), once per fitted model: ``cache`` maps
    ``id(model)`` to ``(model, criteria)`` (holding the model keeps its id unique)."""
    if id(model) not in cache:
        with warnings.catch_warnings():
            # fitted on the DataFrame, scored on its validated values
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            cache[id(model)] = (model, model.information_criteria(X, sample_weight))
    return cache[id(model)][1]


def _loglik(model: GaussianMixture, X: np.ndarray, sample_weight, cache: dict) -> float:
    return _criteria(model, X, sample_weight, cache)["log_likelihood"]


#: Split sizes tried, in units of the split component's standard deviation along its
#: main axis (see :mod:`bayesgmm.core.split`); 0 (an exact copy) is the last resort.
_SPLIT_STEPS = (0.5, 0.05)


def _not_below(
    model: GaussianMixture | None,
    smaller: GaussianMixture,
    data,
    X: np.ndarray,
    sample_weight,
    cache: dict,
    failure: Exception | None = None,
) -> tuple[GaussianMixture, str]:
    """``model``, or a refit from ``smaller`` with one component split, whichever has
    the higher log-likelihood, and where it started (see ``monotone`` in
    :func:`select_model`). ``model=None`` (its fit raised ``failure``): the best split
    refit, or ``failure`` raised again if every refit fails."""
    start = str(smaller.init_params)
    target = _loglik(smaller, X, sample_weight, cache)
    reached = target - _MONOTONE_RTOL * abs(target)
    best, best_ll = model, -np.inf if model is None else _loglik(model, X, sample_weight, cache)
    if best_ll >= reached:
        return model, start
    k_small = smaller.n_components
    cov = smaller.covariance_type
    table = get_covariance_model(cov)
    params = smaller._params()
    directions, gains = split_directions(X, params, cov, sample_weight)
    template = clone(smaller).set_params(n_components=k_small + 1, n_init=1)
    trials = [(j, step) for j in split_order(gains, params.weights) for step in _SPLIT_STEPS]
    trials += [(int(np.argmax(params.weights)), 0.0)]
    for j, step in trials:
        split = split_component(params, j, step * directions[j], cov)
        trial = clone(template).set_params(
            weights_init=split.weights,
            means_init=split.means,
            precisions_init=table.precisions(split.precisions_cholesky),
        )
        try:
            trial.fit(data, sample_weight=sample_weight)
        except Exception:  # a failed split is just not used
            continue
        ll = _loglik(trial, X, sample_weight, cache)
        if ll > best_ll:
            what = "copy" if step == 0 else "split"
            best, best_ll, start = trial, ll, f"{what} {j} of K={k_small}"
        if best_ll >= reached:
            break
    if best is None:
        raise failure
    return best, start


def _degeneracy_text(model: GaussianMixture) -> str:
    if not model.degeneracies_:
        return ""
    prior = model.prior_ is not None
    return degeneracy_message(model.degeneracies_, reg_covar=model.reg_covar, prior=prior)


def _all_failed_message(table: pd.DataFrame) -> str:
    """Which cells failed with which error, one line per distinct error."""
    lines = []
    for error, cells in table.groupby("error", sort=False):
        where = ", ".join(f"K={k} {cov}" for k, cov in zip(
            cells["n_components"], cells["covariance_type"], strict=True))  # fmt: skip
        lines.append(f"  {where}: {error}")
    return f"Every fit of the grid ({len(table)} cells) failed:\n" + "\n".join(lines)
