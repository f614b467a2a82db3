"""The interval probability: one setting for every interval the package reports.

Every interval bayesgmm computes or prints (credible intervals of
:func:`bayesgmm.compare_estimates`, the bootstrap and Wald intervals beside them,
:func:`bayesgmm.membership_table`, ``PosteriorGaussianMixture.membership_interval`` and
``imputation_interval``, :meth:`bayesgmm.BootstrapResult.intervals`,
:meth:`bayesgmm.ObservedInformation.intervals`, the plots, and the ``bayesgmm fit``
report, ``estimates.csv`` and ``imputed.csv``) takes its probability from a ``prob=None``
(or ``ci_prob=None``) parameter, and None means :func:`default_ci_prob`: ArviZ's
``rcParams["stats.ci_prob"]``, read at call time. So one setting changes all of them, and
the same one changes ArviZ's own ``summary``, ``plot_forest``, ``plot_dist``, ... of the
posterior's draws::

    import arviz as az
    az.rcParams["stats.ci_prob"] = 0.95          # from here on
    with az.rc_context(rc={"stats.ci_prob": 0.5}):  # or for a block
        table = bayesgmm.compare_estimates(post, mle=gm)  # 50% intervals

The default, ArviZ's 0.89, is explained in the user guide (Uncertainty, "Which interval
level").
"""

from __future__ import annotations

import numbers

import pandas as pd

__all__ = ["check_prob", "default_ci_prob", "level_columns", "level_label", "level_suffix"]

#: Column-name endings that hold an interval (or a flag computed from one).
_INTERVAL_ENDINGS = ("_lower", "_upper", "_in_ci")


def default_ci_prob() -> float:
    """The interval probability every ``prob=None`` parameter of bayesgmm uses.

    ArviZ's ``rcParams["stats.ci_prob"]`` (0.89 unless it was changed), read at each
    call, so setting it (or ``arviz.rc_context``) changes every interval of the package
    and of ArviZ together.

    Returns
    -------
    float
        In (0, 1).

    Examples
    --------
    >>> import arviz as az
    >>> from bayesgmm import default_ci_prob
    >>> default_ci_prob()
    0.89
    >>> with az.rc_context(rc={"stats.ci_prob": 0.95}):
    ...     default_ci_prob()
    0.95
    """
    from arviz_base import rcParams

    return float(rcParams["stats.ci_prob"])


def check_prob(prob: float | None, name: str = "prob") -> float:
    """``prob`` as a float in (0, 1); :func:`default_ci_prob` when it is None."""
    if prob is None:
        return default_ci_prob()
    if isinstance(prob, bool) or not isinstance(prob, numbers.Real) or not 0.0 < prob < 1.0:
        raise ValueError(f"`{name}` must be a number strictly between 0 and 1; got {prob!r}.")
    return float(prob)


def level_suffix(prob: float) -> str:
    """The level as it goes into a column name: 0.89 -> ``'89'``, 0.945 -> ``'94.5'``."""
    return f"{round(100.0 * prob, 6):g}"


def level_label(prob: float) -> str:
    """The level as it goes into a header or sentence: 0.89 -> ``'89%'``."""
    return f"{level_suffix(prob)}%"


def level_columns(table: pd.DataFrame, prob: float) -> pd.DataFrame:
    """A copy of ``table`` whose interval columns carry the level in their names.

    Every column named ``lower`` or ``upper`` or ending in ``_lower``, ``_upper`` or
    ``_in_ci`` gets ``_{level}`` appended (``ci_lower`` -> ``ci_lower_89``), as written
    to the CLI's CSV files.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame(columns=["mle", "ci_lower", "map_in_ci"])
    >>> list(level_columns(table, 0.9).columns)
    ['mle', 'ci_lower_90', 'map_in_ci_90']
    """
    suffix = level_suffix(prob)
    renamed = {
        c: f"{c}_{suffix}"
        for c in table.columns
        if str(c) in ("lower", "upper") or str(c).endswith(_INTERVAL_ENDINGS)
    }
    out = table.rename(columns=renamed)
    out.attrs = {**table.attrs, "ci_prob": prob}
    return out
