r"""Degenerate fits: components on too few points, empty components, and covariances
that are mostly ``reg_covar``.

Maximum likelihood for a Gaussian mixture has no maximum when a component shrinks onto
a single point (its likelihood grows without bound), and EM then stops wherever
``reg_covar`` holds the covariance. Such a fit looks like any other, so every fit is
inspected once, here, and :class:`DegenerateFitWarning` says what was found:

``small_weight``
    A weight below one observation's worth, :math:`\pi_k < 1/N` (``N`` the total
    sample weight): the component explains less than one point.
``few_points``
    No more *effective distinct* points than the component's own covariance
    parameters (at least one; with a covariance prior, about one point). Identical
    rows count as one point, and the points are weighted by responsibility (times
    sample weight) with Kish's effective sample size
    :math:`n^{\mathrm{eff}}_k = (\sum_u m_{uk})^2 / \sum_u m_{uk}^2`, where
    :math:`m_{uk}` is the responsibility mass of distinct row ``u``. Unit-free.
``reg_covar``
    ``reg_covar`` makes up more than :data:`REG_COVAR_SHARE` of the variance of a
    feature in a component (its variance without ``reg_covar`` is less than 10 times
    ``reg_covar``), or of the variance along some direction (the smallest eigenvalue
    of the covariance). ``reg_covar`` is an absolute amount in the data's units (as in
    scikit-learn), so this finding depends on the units by nature: it is the warning
    that a feature's scale is too small for ``reg_covar``, or that a component
    collapsed onto the ``reg_covar`` floor.

The first two are unit-free: rescaling a feature changes neither of them.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams

__all__ = [
    "REG_COVAR_SHARE",
    "Degeneracy",
    "DegenerateFitWarning",
    "degeneracy_message",
    "find_degeneracies",
    "warn_degenerate",
]

#: ``reg_covar`` above this share of a fitted variance is reported: the variance
#: without ``reg_covar`` is then less than 10 times ``reg_covar``.
REG_COVAR_SHARE = 1.0 / 11.0

_MAX_LISTED = 6


class DegenerateFitWarning(UserWarning):
    """A fitted mixture has a degenerate component (too few points, a weight below one
    observation, or a covariance held up by ``reg_covar``); see
    :attr:`bayesgmm.GaussianMixture.degeneracies_`."""


@dataclass(frozen=True)
class Degeneracy:
    """One finding about a fitted mixture.

    Attributes
    ----------
    kind : {'small_weight', 'few_points', 'reg_covar'}
    component : int or None
        The component (``None`` for the shared covariance of 'tied').
    value : float
        The weight, the effective number of distinct points, or the share of the
        variance that is ``reg_covar``.
    limit : float
        The threshold: ``1/N``; the number of covariance parameters (``value`` is
        below it plus one half); :data:`REG_COVAR_SHARE`.
    features : tuple of str
        For ``reg_covar``: the features concerned (for a direction, the features
        that load most on it).
    variance : float or None
        For ``reg_covar``: the data's own variance (of the feature, or along the
        direction) in the component, weighted by responsibility.
    direction : bool
        For ``reg_covar``: True when no single feature but a combination of features
        has the small variance.
    """

    kind: Literal["small_weight", "few_points", "reg_covar"]
    component: int | None
    value: float
    limit: float
    features: tuple[str, ...] = ()
    variance: float | None = None
    direction: bool = False
    axis: tuple[float, ...] | None = None

    def _replace_variance(self, variance: float) -> Degeneracy:
        return dataclasses.replace(self, variance=variance)


def _data_variance(X, mass, means, component, finding: Degeneracy, names) -> float:
    """Responsibility-weighted variance of the data about the component mean(s) along
    the finding's feature or direction (pooled over components for 'tied')."""
    if finding.direction:
        axis = np.asarray(finding.axis)
    else:
        axis = np.zeros(X.shape[1])
        axis[names.index(finding.features[0])] = 1.0
    ks = range(means.shape[0]) if component is None else [component]
    # Rows with a missing value on the axis's features are left out of this summary.
    used = ~np.isnan(X[:, axis != 0]).any(axis=1)
    Xu, mass = np.nan_to_num(X[used]), mass[used]
    total = sum(float(mass[:, k] @ ((Xu - means[k]) @ axis) ** 2) for k in ks)
    count = sum(float(mass[:, k].sum()) for k in ks)
    return total / count if count > 0 else 0.0


def find_degeneracies(
    X: np.ndarray,
    resp: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    *,
    reg_covar: float,
    sample_weight: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
    covariance_prior: bool = False,
) -> tuple[Degeneracy, ...]:
    """Inspect a fitted mixture; return its degeneracies (empty if none).

    Parameters
    ----------
    X : ndarray of shape (N, D)
        The training data.
    resp : ndarray of shape (N, K)
        Responsibilities of the fitted parameters.
    params : GMMParams
        The fitted parameters (covariances include ``reg_covar``).
    covariance_type : str
    reg_covar : float
        The amount that was added to the covariances' diagonal.
    sample_weight : ndarray of shape (N,), optional
        Frequency weights.
    feature_names : sequence of str, optional
        Names of the features (default ``x0, x1, ...``).
    covariance_prior : bool, default=False
        Whether the fit had a prior on the covariances (MAP). The prior then
        determines what the points leave open, so ``few_points`` is only reported for
        a component on (about) one point.

    Returns
    -------
    tuple of Degeneracy
        Sorted by kind (weights, points, reg_covar), then component.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> X = np.repeat([[0.0, 0.0], [1.0, 3.0], [4.0, 1.0]], 10, axis=0)
    >>> gm = GaussianMixture(3, random_state=0)
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     gm = gm.fit(X)
    >>> sorted({d.kind for d in gm.degeneracies_})
    ['few_points', 'reg_covar']
    """
    model = get_covariance_model(covariance_type)
    n_samples, n_features = X.shape
    n_components = params.weights.shape[0]
    names = (
        [str(f) for f in feature_names]
        if feature_names is not None
        else [f"x{j}" for j in range(n_features)]
    )
    mass = resp if sample_weight is None else resp * sample_weight[:, None]
    total = float(n_samples if sample_weight is None else sample_weight.sum())
    findings: list[Degeneracy] = []

    # Below one observation, with a margin for rounding: a component on exactly one
    # point has weight 1/N up to rounding and is a ``few_points`` finding instead.
    small = params.weights < (1.0 - 1e-6) / total
    findings += [
        Degeneracy("small_weight", k, float(params.weights[k]), 1.0 / total)
        for k in np.flatnonzero(small)
    ]

    per_component = "component" in model.dims
    own_parameters = model.n_parameters(1, n_features) if per_component else 0
    # At most as many points as the covariance has parameters (rounded: a component on
    # p points plus a trace of responsibility elsewhere counts as p); with a covariance
    # prior, which determines what the points leave open, only about one point.
    limit = 1.0 if covariance_prior else float(max(1, own_parameters))
    ess = _effective_distinct_points(X, mass)
    findings += [
        Degeneracy("few_points", int(k), float(ess[k]), limit)
        for k in np.flatnonzero((ess < limit + 0.5) & ~small)
    ]

    if reg_covar > 0:
        covs = model.to_full(params.covariances, n_components, n_features)
        precs = model.to_full(
            model.precisions(params.precisions_cholesky), n_components, n_features
        )
        components = range(n_components) if per_component else [None]
        for k in components:
            if k is not None and small[k]:
                continue
            i = 0 if k is None else k
            found = _reg_covar_findings(k, covs[i], precs[i], reg_covar, names)
            findings += [
                f._replace_variance(_data_variance(X, mass, params.means, k, f, names))
                for f in found
            ]
    return tuple(findings)


def _effective_distinct_points(X: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Kish's effective sample size of each component over the distinct rows, (K,)."""
    codes, n_distinct = _row_codes(X)
    if n_distinct < X.shape[0]:
        mass = np.stack(
            [
                np.bincount(codes, weights=mass[:, k], minlength=n_distinct)
                for k in range(mass.shape[1])
            ],
            axis=1,
        )
    total = mass.sum(axis=0)
    squares = np.einsum("uk,uk->k", mass, mass)
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = np.where(squares > 0, total**2 / squares, 0.0)
    return ess


def _row_codes(X: np.ndarray) -> tuple[np.ndarray, int]:
    """An integer per row, equal for identical rows (by a 64-bit hash of the row)."""
    import pandas as pd

    hashes = pd.util.hash_pandas_object(pd.DataFrame(X), index=False).to_numpy()
    codes, uniques = pd.factorize(hashes)
    return codes, len(uniques)


def _reg_covar_findings(
    component: int | None, cov: np.ndarray, prec: np.ndarray, reg_covar: float, names
) -> list[Degeneracy]:
    diag = np.diag(cov)
    share = reg_covar / diag
    flagged = np.flatnonzero(share > REG_COVAR_SHARE)
    if flagged.size:
        return [
            Degeneracy(
                "reg_covar",
                component,
                float(share[j]),
                REG_COVAR_SHARE,
                features=(names[j],),
            )
            for j in flagged
        ]
    # No single feature, perhaps a combination: the smallest variance of the covariance
    # is 1 / (largest eigenvalue of the precision), computed accurately from above.
    eigvals, eigvecs = np.linalg.eigh(prec)
    smallest_variance = 1.0 / eigvals[-1]
    direction_share = reg_covar / smallest_variance
    if direction_share <= REG_COVAR_SHARE:
        return []
    loadings = np.abs(eigvecs[:, -1]) * np.sqrt(diag)  # on the standardized features
    involved = tuple(names[j] for j in np.flatnonzero(loadings >= 0.5 * loadings.max()))
    return [
        Degeneracy(
            "reg_covar",
            component,
            float(direction_share),
            REG_COVAR_SHARE,
            features=involved,
            direction=True,
            axis=tuple(float(a) for a in eigvecs[:, -1]),
        )
    ]


def _components(ks: Sequence[int | None]) -> str:
    ks = list(dict.fromkeys(ks))
    if ks == [None]:
        return "the tied covariance"
    shown = ", ".join(str(k) for k in ks[:_MAX_LISTED])
    more = f" and {len(ks) - _MAX_LISTED} more" if len(ks) > _MAX_LISTED else ""
    return f"component{'s' if len(ks) > 1 else ''} {shown}{more}"


def _values(values: Sequence[float], fmt: str) -> str:
    shown = ", ".join(format(v, fmt) for v in values[:_MAX_LISTED])
    return shown + (", ..." if len(values) > _MAX_LISTED else "")


def _share(found: Sequence[Degeneracy]) -> str:
    shares = [min(f.value, 1.0) for f in found]
    if len(shares) == 1 or max(shares) - min(shares) < 0.005:
        return f"{max(shares):.0%}"
    return f"{min(shares):.0%} to {max(shares):.0%}"


def degeneracy_message(
    findings: Sequence[Degeneracy], *, reg_covar: float, prior: bool = False
) -> str:
    """One warning text for ``findings``: what was found, where, and what to do."""
    by_kind = {kind: [f for f in findings if f.kind == kind] for kind in
               ("small_weight", "few_points", "reg_covar")}  # fmt: skip
    parts = []
    if by_kind["small_weight"]:
        found = by_kind["small_weight"]
        parts.append(
            f"{_components([f.component for f in found])} "
            f"{'has a weight' if len(found) == 1 else 'have weights'} below one "
            f"observation (1/N = {found[0].limit:.3g}): "
            f"{_values([f.value for f in found], '.2g')}"
        )
    if by_kind["few_points"]:
        found = by_kind["few_points"]
        parts.append(
            f"{_components([f.component for f in found])} "
            f"{'rests' if len(found) == 1 else 'rest'} on "
            f"{_values([f.value for f in found], '.4g')} effective distinct point(s)"
            + (
                f", no more than the {found[0].limit:g} parameters of its covariance"
                if found[0].limit > 1
                else " (about one point)"
            )
        )
    reg_findings = by_kind["reg_covar"]
    for component in list(dict.fromkeys(f.component for f in reg_findings))[:_MAX_LISTED]:
        found = [f for f in reg_findings if f.component == component]
        where = "the tied covariance" if component is None else f"component {component}"
        if found[0].direction:
            what = f"the variance along a combination of {', '.join(map(repr, found[0].features))}"
        else:
            quoted = ", ".join(repr(f.features[0]) for f in found)
            what = f"the variance of {quoted}" if len(found) == 1 else f"the variances of {quoted}"
        own = _values([f.variance for f in found], ".3g")
        parts.append(
            f"reg_covar={reg_covar:.3g} makes up {_share(found)} of {what} in {where} "
            f"(the data's own: {own})"
        )
    if len({f.component for f in reg_findings}) > _MAX_LISTED:
        parts.append("and more components likewise")
    fixes = []
    if by_kind["small_weight"] or by_kind["few_points"]:
        fixes.append("fewer components (n_components)")
        if not prior:
            fixes.append("a prior (prior='default', a MAP fit)")
    if by_kind["reg_covar"]:
        fixes.append(
            "rescaling the features (e.g. standardizing them: reg_covar is in the data's "
            "units) or a smaller reg_covar"
        )
        if not prior and not (by_kind["small_weight"] or by_kind["few_points"]):
            fixes.append("a prior (prior='default')")
    if by_kind["small_weight"] or any(f.value < 1.5 for f in by_kind["few_points"]):
        meaning = "Such a component describes (almost) single points, not a cluster"
    elif by_kind["few_points"]:
        meaning = "Its covariance is not determined by so few points"
    else:
        meaning = "That variance is then mostly reg_covar, not the data's"
    return f"Degenerate fit: {'; '.join(parts)}. {meaning}. Try {', or '.join(fixes)}."


def warn_degenerate(
    findings: Sequence[Degeneracy], *, reg_covar: float, prior: bool, stacklevel: int = 2
) -> None:
    """Issue one :class:`DegenerateFitWarning` describing ``findings`` (if any)."""
    if findings:
        warnings.warn(
            degeneracy_message(findings, reg_covar=reg_covar, prior=prior),
            DegenerateFitWarning,
            stacklevel=stacklevel + 1,
        )
