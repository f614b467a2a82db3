r"""The unconstrained parameterization of the PyMC model, in NumPy.

:func:`bayesgmm.bayes.build_model` puts every parameter on an unconstrained space
through PyMC's default transforms. This module is their NumPy mirror -- the ONE place
outside ``bayes/model.py`` that knows the model's value variables: the Laplace
approximation (:mod:`bayesgmm._laplace`) and the numba kernel nutpie samples
(:mod:`bayesgmm.bayes._kernel`, its vector ``theta`` is :class:`UnconstrainedLayout`'s
``z``) both use it. If the model's parameterization changes, only this module (its
table ``_COORDINATES``) changes. ``tests/test_laplace.py`` and
``tests/test_bayes_kernel.py`` check it against the PyMC model (value-variable names and
shapes, ``logp(jacobian=True)`` at random points).

========================  ==================================  =====================
value variable            constrained value                   PyMC transform
========================  ==================================  =====================
``weights_simplex__``     ``weights`` (K,), on the simplex    ``SimplexTransform``
``means``                 ``means`` (K, D)                    none
``covariances_cholesky-   ``covariances`` (K, D, D) full,     ``CholeskyCovTransform``
cov__``                   (D, D) tied
``covariances_log__``     variances (K, D) diag, (K,)         ``log``
                          spherical
``variance_log__``        EII's one variance ()               ``log``
``variances_log__``       EEI's shared diagonal (D,)          ``log``
``log_shape_zerosum__``   VEI's log-shape :math:`\log a`      ``ZeroSumTransform``
                          (D,), sum zero
``volumes_log__``         VEI's volumes :math:`\lambda_k`     ``log``
                          (K,)
``log_shapes_zerosum__``  EVI's log-shapes                    ``ZeroSumTransform``
                          :math:`\log a_{kj}` (K, D), each    (last axis)
                          row sum zero
``volume_log__``          EVI's one volume :math:`\lambda`    ``log``
========================  ==================================  =====================

Simplex: :math:`y = (z, -\sum_j z_j)`, :math:`\pi = \operatorname{softmax}(y)`, with
:math:`\log|J| = \log K - K \operatorname{logsumexp}(y)` (density of the first
``K - 1`` weights). Cholesky: :math:`z` is the row-major packed lower triangle of
:math:`L` with :math:`\log L_{kk}` on the diagonal, :math:`\Sigma = L L^T`,
:math:`\log|J| = d \log 2 + \sum_k (d - k + 2) z_{kk}` (density of the free entries of
:math:`\Sigma`). Log: :math:`\sigma^2 = e^z`, :math:`\log|J| = \sum z`. Zero-sum:
:math:`D - 1` reals onto the vectors of length :math:`D` that sum to zero by a
Householder reflection (an isometry onto that hyperplane), :math:`\log|J| = 0`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, softmax

from bayesgmm.core.covariance import get_covariance_model

__all__ = ["UnconstrainedLayout", "covariance_coordinates", "unconstrained_layout"]


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


class _ZeroSum:
    """PyMC's ``ZeroSumTransform`` on the last axis (``extend_axis`` /
    ``extend_axis_rev``): a Householder reflection maps ``D - 1`` reals onto the
    vectors of length ``D`` with zero sum, isometrically, so ``log|J| = 0``."""

    suffix = "_zerosum__"

    @staticmethod
    def forward(x: np.ndarray) -> np.ndarray:
        n = x.shape[-1]
        norm = -x[..., -1:] * np.sqrt(n) / (np.sqrt(n) + n)
        return x[..., :-1] + norm

    @staticmethod
    def backward(z: np.ndarray) -> np.ndarray:
        n = z.shape[-1] + 1
        total = z.sum(axis=-1, keepdims=True)
        norm = total / (np.sqrt(n) + n)
        return np.concatenate([z, norm - total / np.sqrt(n)], axis=-1) - norm

    @staticmethod
    def log_jac_det(z: np.ndarray) -> float:
        return 0.0

    @staticmethod
    def log_jac_det_hessian(z: np.ndarray) -> np.ndarray:
        return np.zeros((z.size, z.size))


# --------------------------------------------------------------------------------------
# The covariance variables of each posterior covariance type (one entry per type)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Variable:
    """One free random variable of the model: its name, constrained shape and dims,
    and its transform."""

    name: str
    shape: tuple
    dims: tuple
    transform: object

    @property
    def value_name(self) -> str:
        return self.name + self.transform.suffix

    @property
    def value_shape(self) -> tuple:
        if isinstance(self.transform, _CholeskyCov):
            return (*self.shape[:-2], self.transform.size())
        if self.transform is _ZeroSum:
            return (*self.shape[:-1], self.shape[-1] - 1)
        return self.shape


class _Coordinates(ABC):
    """How one covariance type's ``covariances`` (the core table's shape) are made of
    the model's free random variables."""

    @abstractmethod
    def variables(self, n_components: int, n_features: int) -> tuple[_Variable, ...]:
        """The free variables, in the order of the unconstrained vector."""

    def split(self, covariances: np.ndarray) -> dict[str, np.ndarray]:
        """Constrained values of the free variables (one point; for ``initvals``)."""
        return {"covariances": np.asarray(covariances, dtype=float)}

    def join(self, values: dict, n_components: int, n_features: int) -> np.ndarray:
        """``covariances`` from the free variables' values (batched over leading axes)."""
        return values["covariances"]


class _Matrices(_Coordinates):
    def __init__(self, per_component: bool) -> None:
        self.per_component = per_component

    def variables(self, n_components, n_features):
        d = n_features
        shape = (n_components, d, d) if self.per_component else (d, d)
        dims = ("component", "feature", "feature_bis")[-len(shape) :]
        return (_Variable("covariances", shape, dims, _CholeskyCov(d)),)


class _Variances(_Coordinates):
    def __init__(self, spherical: bool) -> None:
        self.spherical = spherical

    def variables(self, n_components, n_features):
        if self.spherical:
            return (_Variable("covariances", (n_components,), ("component",), _Log()),)
        shape = (n_components, n_features)
        return (_Variable("covariances", shape, ("component", "feature"), _Log()),)


class _SharedVariances(_Coordinates):
    """EII (one variance) and EEI (one diagonal), shared by the components: the free
    variable is the shared part; ``covariances`` (K, D) its broadcast."""

    def __init__(self, spherical: bool) -> None:
        self.spherical = spherical

    def variables(self, n_components, n_features):
        if self.spherical:
            return (_Variable("variance", (), (), _Log()),)
        return (_Variable("variances", (n_features,), ("feature",), _Log()),)

    def split(self, covariances):
        shared = np.asarray(covariances, dtype=float)[0]
        if self.spherical:
            return {"variance": np.asarray(shared.mean())}
        return {"variances": shared.copy()}

    def join(self, values, n_components, n_features):
        if self.spherical:
            row = np.asarray(values["variance"])[..., None, None]
        else:
            row = np.asarray(values["variances"])[..., None, :]
        lead = row.shape[:-2]
        return np.broadcast_to(row, (*lead, n_components, n_features)).copy()


class _VolumeShape(_Coordinates):
    r"""VEI (:math:`\Sigma_k = \lambda_k A`, ``shared_shape``) and EVI
    (:math:`\Sigma_k = \lambda A_k`): volumes on the log transform, log-shapes
    :math:`u = \log a` (each shape's diagonal, :math:`|A| = \prod_j a_j = 1`, so
    :math:`\sum_j u_j = 0`) on the zero-sum transform; variances
    :math:`\lambda_k e^{u_j}` (VEI) or :math:`\lambda e^{u_{kj}}` (EVI).

    :meth:`split` of variances outside the family projects their logarithms on it
    (least squares): volumes the geometric means, shapes what remains."""

    def __init__(self, shared_shape: bool) -> None:
        self.shared_shape = shared_shape

    def variables(self, n_components, n_features):
        k, d = n_components, n_features
        if self.shared_shape:
            return (
                _Variable("log_shape", (d,), ("feature",), _ZeroSum),
                _Variable("volumes", (k,), ("component",), _Log()),
            )
        return (
            _Variable("log_shapes", (k, d), ("component", "feature"), _ZeroSum),
            _Variable("volume", (), (), _Log()),
        )

    def split(self, covariances):
        log_var = np.log(np.asarray(covariances, dtype=float))  # (K, D)
        log_volumes = log_var.mean(axis=1)
        log_shapes = log_var - log_volumes[:, None]
        if self.shared_shape:
            shape = log_shapes.mean(axis=0)
            return {"log_shape": shape - shape.mean(), "volumes": np.exp(log_volumes)}
        return {"log_shapes": log_shapes, "volume": np.asarray(np.exp(log_volumes.mean()))}

    def join(self, values, n_components, n_features):
        if self.shared_shape:
            log_vol = np.log(np.asarray(values["volumes"]))[..., :, None]
            return np.exp(log_vol + np.asarray(values["log_shape"])[..., None, :])
        log_vol = np.log(np.asarray(values["volume"]))[..., None, None]
        return np.exp(log_vol + np.asarray(values["log_shapes"]))


#: The posterior's covariance types (the core table's names), each with its free
#: variables: the twin of ``bayes/model.py``'s ``_SYMBOLIC_COVARIANCES``.
_COORDINATES: dict[str, _Coordinates] = {
    "full": _Matrices(per_component=True),
    "tied": _Matrices(per_component=False),
    "diag": _Variances(spherical=False),
    "spherical": _Variances(spherical=True),
    "EII": _SharedVariances(spherical=True),
    "EEI": _SharedVariances(spherical=False),
    "VEI": _VolumeShape(shared_shape=True),
    "EVI": _VolumeShape(shared_shape=False),
}


def covariance_coordinates(covariance_type: str) -> _Coordinates:
    """The free variables of ``covariance_type``'s covariances in the PyMC model."""
    name = get_covariance_model(covariance_type).name  # ValueError if unknown
    try:
        return _COORDINATES[name]
    except KeyError:
        raise ValueError(
            f"covariance_type={covariance_type!r} has no unconstrained parameterization "
            f"(no posterior model); types that have one: {list(_COORDINATES)}."
        ) from None


# --------------------------------------------------------------------------------------
# The layout of the unconstrained vector
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnconstrainedLayout:
    """The PyMC model's value variables of one mixture, flattened into one vector ``z``.

    Order: ``weights_simplex__`` (K - 1), ``means`` (K * D, row-major), then the
    covariance type's variables (``covariances_cholesky-cov__``,
    ``covariances_log__``, ``variance_log__``, ``variances_log__``, or for VEI
    ``log_shape_zerosum__`` then ``volumes_log__``, for EVI ``log_shapes_zerosum__``
    then ``volume_log__``), each row-major.

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
    def _variables(self) -> tuple[_Variable, ...]:
        return covariance_coordinates(self.covariance_type).variables(
            self.n_components, self.n_features
        )

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
            name: z[..., where].reshape((*lead, *shape))
            for name, shape, where in zip(self.names, self.shapes, self.slices, strict=True)
        }

    def join(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """The inverse of :meth:`split` (no leading axes)."""
        return np.concatenate([np.ravel(values[name]) for name in self.names])

    def forward(self, weights, means, covariances) -> np.ndarray:
        """``z`` from the constrained parameters (scikit-learn shapes)."""
        w_name, m_name = self.names[:2]
        parts = covariance_coordinates(self.covariance_type).split(covariances)
        values = {
            w_name: _Simplex.forward(np.asarray(weights, dtype=float)),
            m_name: np.asarray(means, dtype=float),
        }
        for var in self._variables:
            values[var.value_name] = var.transform.forward(np.asarray(parts[var.name], float))
        return self.join(values)

    def backward(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(weights, means, covariances)`` from ``z`` (..., p), batched over leading axes."""
        w_name, m_name = self.names[:2]
        parts = self.split(np.asarray(z, dtype=float))
        values = {
            var.name: var.transform.backward(parts[var.value_name]) for var in self._variables
        }
        covariances = covariance_coordinates(self.covariance_type).join(
            values, self.n_components, self.n_features
        )
        return _Simplex.backward(parts[w_name]), parts[m_name], covariances

    def log_jac_det(self, z: np.ndarray) -> float:
        """:math:`\\log|\\det \\partial(\\text{free constrained values})/\\partial z|`."""
        parts = self.split(np.asarray(z, dtype=float))
        total = _Simplex.log_jac_det(parts[self.names[0]])
        for var in self._variables:
            total += var.transform.log_jac_det(parts[var.value_name])
        return total

    def log_jac_det_hessian(self, z: np.ndarray) -> np.ndarray:
        """Hessian of :meth:`log_jac_det` in ``z``, shape (p, p) (block diagonal)."""
        parts = self.split(np.asarray(z, dtype=float))
        slices = dict(zip(self.names, self.slices, strict=True))
        out = np.zeros((self.size, self.size))
        w_slice = slices[self.names[0]]
        out[w_slice, w_slice] = _Simplex.log_jac_det_hessian(parts[self.names[0]])
        for var in self._variables:
            where = slices[var.value_name]
            out[where, where] = var.transform.log_jac_det_hessian(parts[var.value_name])
        return out

    def labels(self, feature_names) -> list[str]:
        """One label per entry of ``z``: ``weights_simplex__[0]``, ``means[1, x]``,
        ``covariances_cholesky-cov__[0, 2]``, ``covariances_log__[1, x]`` (a feature's
        name where the entry is one feature's, an integer position otherwise)."""
        names = list(feature_names)
        w_name, m_name = self.names[:2]
        out = [f"{w_name}[{j}]" for j in range(self.n_components - 1)]
        out += [f"{m_name}[{k}, {f}]" for k in range(self.n_components) for f in names]
        for var in self._variables:
            same_shape = var.value_shape == var.shape
            for where in np.ndindex(*var.value_shape):
                parts = [str(i) for i in where]
                if same_shape and var.dims and var.dims[-1] == "feature":
                    parts[-1] = names[where[-1]]
                out.append(f"{var.value_name}[{', '.join(parts)}]")
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
    >>> unconstrained_layout(3, 2, "VEI").names[2:]
    ('log_shape_zerosum__', 'volumes_log__')
    """
    variables = covariance_coordinates(covariance_type).variables(n_components, n_features)
    return UnconstrainedLayout(
        n_components,
        n_features,
        get_covariance_model(covariance_type).name,
        ("weights" + _Simplex.suffix, "means", *(v.value_name for v in variables)),
        ((n_components - 1,), (n_components, n_features), *(v.value_shape for v in variables)),
    )
