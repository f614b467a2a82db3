"""``imputed.csv``: the missing cells of the data, filled in under the fitted mixture."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MAR_NOTE", "imputation_table"]

#: The missing-at-random assumption in plain words (summary and report).
MAR_NOTE = (
    "missing values are treated as missing at random: whether a value is missing may "
    "depend on the values that were observed, but not on the missing value itself. Each "
    "incomplete row counts through its observed values; the missing ones are integrated "
    "out, not guessed. If values are missing *because* of what they are (high incomes "
    "left blank, say), the estimates are biased"
)

_DRAWS = 2000


def imputation_table(
    X: pd.DataFrame, models: dict, *, seed: int, prob: float, lines=None
) -> pd.DataFrame:
    """One row per missing cell: the conditional mean and an interval for it.

    Columns: ``line`` (the file line of the row, when ``lines`` is given), ``row``
    (0-based data row), ``column``, ``imputed`` (the conditional mean
    :math:`E[x_M \\mid x_O]` under the point fit, MAP if fitted else MLE), ``method``,
    ``lower``/``upper`` (a ``prob`` interval of the conditional distribution under the
    point fit, from draws) and, with the posterior, ``posterior_mean``,
    ``posterior_lower``, ``posterior_upper`` (draws over the posterior, so the parameter
    uncertainty is in them).
    """
    holes = X.isna().to_numpy()
    rows, cols = np.nonzero(holes)
    table = pd.DataFrame({"row": rows, "column": X.columns[cols]})
    if lines is not None and len(lines) == len(X):
        table.insert(0, "line", np.asarray(lines)[rows])
    if not rows.size:
        return table
    method = "map" if "map" in models else "mle"
    point = models[method]
    tail = (1.0 - prob) / 2.0
    table["imputed"] = point.impute(X)[rows, cols]
    table["method"] = method
    draws = point.impute(X, n_imputations=_DRAWS, random_state=seed)[:, rows, cols]
    table["lower"], table["upper"] = np.quantile(draws, [tail, 1.0 - tail], axis=0)
    posterior = models.get("posterior")
    if posterior is not None:
        table["posterior_mean"] = posterior.impute(X)[rows, cols]
        bounds = posterior.imputation_interval(X, prob, n_imputations=_DRAWS, random_state=seed)[
            rows, cols
        ]
        table["posterior_lower"], table["posterior_upper"] = bounds[:, 0], bounds[:, 1]
    return table
