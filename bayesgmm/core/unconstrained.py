r"""The unconstrained parameterization of the PyMC model, in NumPy.

:func:`bayesgmm.bayes.build_model` puts every parameter on an unconstrained space
through PyMC's default transforms. This module is their NumPy mirror — the ONE place
outside ``bayes/model.py`` that knows the model's value variables, so if the model's
parameterization changes, only this module (its ``_COVARIANCE_TRANSFORMS`` and
:func:`unconstrained_layout`) changes. ``tests/test_laplace.py`` checks it against the
PyMC model (value-variable names and shapes, ``logp(jacobian=True)`` at random points).

========================  ==================================  =====================
value variable            constrained value                   PyMC transform
========================  ==================================  =====================
``weights_simplex__``     ``weights`` (K,), on the simplex    ``SimplexTransform``
``means``                 ``means`` (K, D)                    none
``covariances_cholesky-   ``covariances`` (K, D, D) full,     ``CholeskyCovTransform``
cov__``                   (D, D) tied
``covariances_log__``     variances (K, D) diag, (K,)         ``log``
                          spherical
========================  ==================================  =====================

Simplex: :math:`y = (z, -\sum_j z_j)`, :math:`\pi = \operatorname{softmax}(y)`, with
:math:`\log|J| = \log K - K \operatorname{logsumexp}(y)` (density of the first
``K - 1`` weights). Cholesky: :math:`z` is the row-major packed lower triangle of
:math:`L` with :math:`\log L_{kk}` on the diagonal, :math:`\Sigma = L L^T`,
:math:`\log|J| = d \log 2 + \sum_k (d - k + 2) z_{kk}` (density of the free entries of
:math:`\Sigma`). Log: :math:`\sigma^2 = e^z`, :math:`\log|J| = \sum z`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, softmax

from bayesgmm.core.covariance import get_covariance_model

__all__ = ["UnconstrainedLayout", "unconstrained_layout"]


# --------------------------------------------------------------------------------------
# Transforms (NumPy mirrors of PyMC's), batched over leading axes
# --------------------------------------------------------------------------------------


class _Simplex:
    suffix = "_simplex__"

    @staticmethod
    def forward(weights: np.ndarray) -> np.ndarray:
        log_w = np.log(weights)
        return log_w[..., :-1] - log_w.mean(axis=-1, keepdims=True)

    @staticmethod
    def backward(z: np.ndarray) -> np.ndarray:
        y = np.concatenate([z, -z.sum(axis=-1, keepdims=True)], axis=-1)
        return softmax(y, axis=-1)

    @staticmethod
    def log_jac_det(z: np.ndarray) -> float:
        k = z.shape[-1] + 1
        y = np.concatenate([z, -z.sum(axis=-1, keepdims=True)], axis=-1)
        return float(np.sum(np.log(k) - k * logsumexp(y, axis=-1)))

    @staticmethod
    def log_jac_det_hessian(z: np.ndarray) -> np.ndarray:
        """:math:`-K A^T(\\operatorname{diag}\\pi - \\pi\\pi^T)A`, :math:`y = A z`."""
        k = z.shape[-1] + 1
        w = _Simplex.backward(z)
        a = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))])
        return -k * a.T @ (np.diag(w) - np.outer(w, w)) @ a


class _CholeskyCov:
    suffix = "_cholesky-cov__"

    def __init__(self, n_features: int):
        self.n = n_features
        self.tril = np.tril_indices(n_features)
        self.diag = np.cumsum(np.arange(1, n_features + 1)) - 1

    def size(self) -> int:
        return self.n * (self.n + 1) // 2

    def forward(self, covariances: np.ndarray) -> np.ndarray:
        chol = np.linalg.cholesky(covariances)
        flat = chol[..., self.tril[0], self.tril[1]]
        flat[..., self.diag] = np.log(flat[..., self.diag])
        return flat

    def backward(self, z: np.ndarray) -> np.ndarray:
        values = z.copy()
        values[..., self.diag] = np.exp(values[..., self.diag])
        chol = np.zeros((*z.shape[:-1], self.n, self.n))
        chol[..., self.tril[0], self.tril[1]] = values
        return chol @ np.swapaxes(chol, -1, -2)

    def log_jac_det(self, z: np.ndarray) -> float:
        coeffs = np.arange(self.n + 1, 1, -1, dtype=float)
        n_batch = int(np.prod(z.shape[:-1]))
        return float(n_batch * self.n * np.log(2.0) + np.sum(z[..., self.diag] * coeffs))

    def log_jac_det_hessian(self, z: np.ndarray) -> np.ndarray:
        return np.zeros((z.size, z.size))  # linear in z


class _Log:
    suffix = "_log__"

    @staticmethod
    def forward(variances: np.ndarray) -> np.ndarray:
        return np.log(variances)

    @staticmethod
    def backward(z: np.ndarray) -> np.ndarray:
        return np.exp(z)

    @staticmethod
    def log_jac_det(z: np.ndarray) -> float:
        return float(np.sum(z))

    @staticmethod
    def log_jac_det_hessian(z: np.ndarray) -> np.ndarray:
        return np.zeros((z.size, z.size))


def _covariance_transform(covariance_type: str):
    """The covariance variable's transform: matrices (full, tied) on the Cholesky
    transform, variances (diag, spherical) on the log one. Decided by the covariance
    table's dims, so new families follow their shape."""
    model = get_covariance_model(covariance_type)
    if tuple(model.dims[-2:]) == ("feature", "feature_bis"):
        return "matrix"
    return "variances"


# --------------------------------------------------------------------------------------
# The layout of the unconstrained vector
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnconstrainedLayout:
    """The PyMC model's value variables of one mixture, flattened into one vector ``z``.

    Order: ``weights_simplex__`` (K - 1), ``means`` (K * D, row-major), then the
    covariance variable (``covariances_cholesky-cov__`` or ``covariances_log__``).

    Attributes
    ----------
    n_components, n_features : int
    covariance_type : str
    names : tuple of str
        The PyMC value-variable names, in order.
    shapes : tuple of tuple of int
        Their shapes (as ``model.initial_point()`` has them).
    """

    n_components: int
    n_features: int
    covariance_type: str
    names: tuple
    shapes: tuple

    @property
    def _cov_transform(self):
        if _covariance_transform(self.covariance_type) == "matrix":
            return _CholeskyCov(self.n_features)
        return _Log()

    @property
    def slices(self) -> tuple[slice, ...]:
        out, start = [], 0
        for shape in self.shapes:
            stop = start + int(np.prod(shape, dtype=int))
            out.append(slice(start, stop))
            start = stop
        return tuple(out)

    @property
    def size(self) -> int:
        return self.slices[-1].stop

    def split(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """``z`` (..., p) -> {value-variable name: array (..., *shape)}."""
        lead = z.shape[:-1]
        return {
            name: z[..., where].reshape(*lead, *shape)
            for name, shape, where in zip(self.names, self.shapes, self.slices, strict=True)
        }

    def join(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """The inverse of :meth:`split` (no leading axes)."""
        return np.concatenate([np.ravel(values[name]) for name in self.names])

    def forward(self, weights, means, covariances) -> np.ndarray:
        """``z`` from the constrained parameters (scikit-learn shapes)."""
        w_name, m_name, c_name = self.names
        return self.join(
            {
                w_name: _Simplex.forward(np.asarray(weights, dtype=float)),
                m_name: np.asarray(means, dtype=float),
                c_name: self._cov_transform.forward(np.asarray(covariances, dtype=float)),
            }
        )

    def backward(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(weights, means, covariances)`` from ``z`` (..., p), batched over leading axes."""
        w_name, m_name, c_name = self.names
        parts = self.split(np.asarray(z, dtype=float))
        return (
            _Simplex.backward(parts[w_name]),
            parts[m_name],
            self._cov_transform.backward(parts[c_name]),
        )

    def log_jac_det(self, z: np.ndarray) -> float:
        """:math:`\\log|\\det \\partial(\\text{free constrained values})/\\partial z|`."""
        w_name, _, c_name = self.names
        parts = self.split(np.asarray(z, dtype=float))
        return _Simplex.log_jac_det(parts[w_name]) + self._cov_transform.log_jac_det(parts[c_name])

    def log_jac_det_hessian(self, z: np.ndarray) -> np.ndarray:
        """Hessian of :meth:`log_jac_det` in ``z``, shape (p, p) (block diagonal)."""
        w_name, _, c_name = self.names
        parts = self.split(np.asarray(z, dtype=float))
        w_slice, _, c_slice = self.slices
        out = np.zeros((self.size, self.size))
        out[w_slice, w_slice] = _Simplex.log_jac_det_hessian(parts[w_name])
        out[c_slice, c_slice] = self._cov_transform.log_jac_det_hessian(parts[c_name])
        return out

    def labels(self, feature_names) -> list[str]:
        """One label per entry of ``z``: ``weights_simplex__[0]``, ``means[1, x]``,
        ``covariances_cholesky-cov__[0, 2]``, ``covariances_log__[1, x]``."""
        names = list(feature_names)
        w_name, m_name, c_name = self.names
        out = [f"{w_name}[{j}]" for j in range(self.n_components - 1)]
        out += [f"{m_name}[{k}, {f}]" for k in range(self.n_components) for f in names]
        c_shape = self.shapes[2]
        per_feature = _covariance_transform(self.covariance_type) == "variances" and (
            len(c_shape) == 2
        )
        for where in np.ndindex(*c_shape):
            parts = [str(i) for i in where]
            if per_feature:
                parts[-1] = names[where[-1]]
            out.append(f"{c_name}[{', '.join(parts)}]")
        return out


def unconstrained_layout(
    n_components: int, n_features: int, covariance_type: str
) -> UnconstrainedLayout:
    """The layout of ``build_model``'s value variables for one mixture.

    Examples
    --------
    >>> layout = unconstrained_layout(3, 2, "full")
    >>> layout.names, layout.shapes, layout.size
    (('weights_simplex__', 'means', 'covariances_cholesky-cov__'), ((2,), (3, 2), (3, 3)), 17)
    >>> import numpy as np
    >>> z = layout.forward(np.array([0.2, 0.3, 0.5]), np.zeros((3, 2)), np.stack([np.eye(2)] * 3))
    >>> w, m, c = layout.backward(z)
    >>> bool(np.allclose(w, [0.2, 0.3, 0.5]) and np.allclose(c, np.eye(2)))
    True
    """
    model = get_covariance_model(covariance_type)
    cov_shape = model.shape(n_components, n_features)
    if _covariance_transform(covariance_type) == "matrix":
        transform = _CholeskyCov(n_features)
        cov_value_shape = (*cov_shape[:-2], transform.size())
        cov_name = "covariances" + _CholeskyCov.suffix
    else:
        cov_value_shape = tuple(cov_shape)
        cov_name = "covariances" + _Log.suffix
    return UnconstrainedLayout(
        n_components,
        n_features,
        model.name,
        ("weights" + _Simplex.suffix, "means", cov_name),
        ((n_components - 1,), (n_components, n_features), cov_value_shape),
    )
