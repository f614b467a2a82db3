"""The numba kernels of :mod:`bayesgmm.bayes._kernel` (imported lazily: numba is heavy).

Module-level functions with ``cache=True``: numba stores their machine code on disk
(``NUMBA_CACHE_DIR`` or ``__pycache__``), so only the first process ever compiles them.
"""

import math

import numba
import numpy as np

njit = numba.njit(cache=True, nogil=True, error_model="numpy")


@njit
def _weights(theta, k, logw, w):
    """Log weights and weights from the simplex coordinates (written in place)."""
    s = 0.0
    for j in range(k - 1):
        logw[j] = theta[j]
        s += theta[j]
    logw[k - 1] = -s
    top = logw[0]
    for j in range(1, k):
        top = max(top, logw[j])
    tot = 0.0
    for j in range(k):
        tot += math.exp(logw[j] - top)
    lse = top + math.log(tot)
    for j in range(k):
        logw[j] -= lse
        w[j] = math.exp(logw[j])


@njit
def _weights_grad(grad, w, counts, k):
    """Gradient of sum_k counts_k log w_k in the simplex coordinates."""
    total = 0.0
    for j in range(k):
        total += counts[j]
    last = counts[k - 1] - w[k - 1] * total
    for j in range(k - 1):
        grad[j] = counts[j] - w[j] * total - last


@njit
def _unpack_chol(theta, start, d, L):
    """L (D, D) from the packed row-major lower triangle with log diagonal;
    returns sum of log L_ii."""
    pos = start
    logdet = 0.0
    for i in range(d):
        for j in range(d):
            L[i, j] = 0.0
        for j in range(i + 1):
            if j == i:
                L[i, i] = math.exp(theta[pos])
                logdet += theta[pos]
            else:
                L[i, j] = theta[pos]
            pos += 1
    return logdet


@njit
def _forward(L, v, out, d):
    """out = L^{-1} v (lower triangular)."""
    for i in range(d):
        s = v[i]
        for j in range(i):
            s -= L[i, j] * out[j]
        out[i] = s / L[i, i]


@njit
def _backward(L, v, out, d):
    """out = L^{-T} v."""
    for i in range(d - 1, -1, -1):
        s = v[i]
        for j in range(i + 1, d):
            s -= L[j, i] * out[j]
        out[i] = s / L[i, i]


@njit
def _chol_grad(L, A, cdiag, grad, start, d, tmp_col, tmp_out):
    """Write d logp / d theta of one packed factor: the lower triangle of
    L^{-T} A, diagonal times L_ii plus cdiag, plus the transform's log-Jacobian
    coefficient (D - i + 1)."""
    G = np.empty((d, d))
    for j in range(d):  # column j of L^{-T} A
        for i in range(d):
            tmp_col[i] = A[i, j]
        _backward(L, tmp_col, tmp_out, d)
        for i in range(d):
            G[i, j] = tmp_out[i]
    pos = start
    for i in range(d):
        for j in range(i + 1):
            if j == i:
                grad[pos] = G[i, i] * L[i, i] + cdiag + (d - i + 1)
            else:
                grad[pos] = G[i, j]
            pos += 1


@njit
def logp_spd(theta, grad, buf):
    """Log density and gradient for 'full' (tied=False) and 'tied' covariances."""
    n = int(buf[1])
    d = int(buf[2])
    k = int(buf[3])
    mean_form = int(buf[4])
    cov_prior = int(buf[5])
    logp = buf[6]
    kappa0 = buf[7]
    nu = buf[8]
    tied = buf[9] != 0.0
    off = 10
    X = buf[off : off + n * d].reshape((n, d))
    off += n * d
    alpha = buf[off : off + k]
    off += k
    m0 = buf[off : off + d]
    off += d
    P0 = buf[off : off + d * d].reshape((d, d))
    off += d * d
    B = buf[off : off + d * d].reshape((d, d))
    tri = d * (d + 1) // 2
    n_mats = 1 if tied else k
    m_start = k - 1
    c_start = k - 1 + k * d
    logw = np.empty(k)
    w = np.empty(k)
    _weights(theta, k, logw, w)
    Ls = np.empty((n_mats, d, d))
    logdets = np.empty(n_mats)
    for f in range(n_mats):
        logdets[f] = _unpack_chol(theta, c_start + f * tri, d, Ls[f])
    means = theta[m_start:c_start].reshape((k, d))
    A = np.zeros((n_mats, d, d))
    cdiag = np.zeros(n_mats)
    svec = np.zeros((k, d))  # d logp / d mu_k before the L^{-T} solve
    counts = np.empty(k)  # alpha_k (Dirichlet - 1 + simplex Jacobian 1) + n_k
    for j in range(k):
        counts[j] = alpha[j]
    for j in range(k):
        logp += alpha[j] * logw[j]
    # likelihood
    Z = np.empty((k, d))
    diff = np.empty(d)
    lg = np.empty(k)
    ex = np.empty(k)
    for i in range(n):
        for j in range(k):
            f = 0 if tied else j
            q = 0.0
            for a in range(d):  # forward substitution, z = L^{-1} (x - mu), in place
                acc = X[i, a] - means[j, a]
                for b in range(a):
                    acc -= Ls[f, a, b] * Z[j, b]
                za = acc / Ls[f, a, a]
                Z[j, a] = za
                q += za * za
            lg[j] = logw[j] - logdets[f] - 0.5 * q
        top = lg[0]
        for j in range(1, k):
            top = max(top, lg[j])
        tot = 0.0
        for j in range(k):
            ex[j] = math.exp(lg[j] - top)
            tot += ex[j]
        logp += top + math.log(tot)
        inv_tot = 1.0 / tot
        for j in range(k):
            r = ex[j] * inv_tot
            if r == 0.0:
                continue
            f = 0 if tied else j
            counts[j] += r
            cdiag[f] -= r
            for a in range(d):
                za = r * Z[j, a]
                svec[j, a] += za
                for b in range(a + 1):
                    A[f, a, b] += za * Z[j, b]
    # means prior
    u = np.empty(d)
    if mean_form == 1:
        for j in range(k):
            f = 0 if tied else j
            for a in range(d):
                diff[a] = means[j, a] - m0[a]
            _forward(Ls[f], diff, u, d)
            q = 0.0
            for a in range(d):
                q += u[a] * u[a]
            logp += -logdets[f] - 0.5 * kappa0 * q
            cdiag[f] -= 1.0
            for a in range(d):
                svec[j, a] -= kappa0 * u[a]
                for b in range(a + 1):
                    A[f, a, b] += kappa0 * u[a] * u[b]
    # covariance prior: inverse-Wishart on each factor
    if cov_prior == 1:
        col = np.empty(d)
        zc = np.empty(d)
        for f in range(n_mats):
            logp -= (nu + d + 1.0) * logdets[f]
            cdiag[f] -= nu + d + 1.0
            for c in range(d):
                for a in range(d):
                    col[a] = B[a, c]
                _forward(Ls[f], col, zc, d)
                for a in range(d):
                    logp -= 0.5 * zc[a] * zc[a]
                    for b in range(a + 1):
                        A[f, a, b] += zc[a] * zc[b]
    # transform Jacobians (the constant D log 2 is in buf[6])
    for f in range(n_mats):
        pos = c_start + f * tri
        for a in range(d):
            pos += a  # the diagonal entry of row a is at offset a*(a+1)/2 + a
            logp += (d - a + 1) * theta[pos]
            pos += 1
    # gradients
    _weights_grad(grad, w, counts, k)
    gm = np.empty(d)
    for j in range(k):
        f = 0 if tied else j
        _backward(Ls[f], svec[j], gm, d)
        for a in range(d):
            grad[m_start + j * d + a] = gm[a]
    if mean_form == 2:
        for j in range(k):
            for a in range(d):
                diff[a] = means[j, a] - m0[a]
            for a in range(d):
                s = 0.0
                for b in range(d):
                    s += P0[a, b] * diff[b]
                logp -= 0.5 * diff[a] * s
                grad[m_start + j * d + a] -= s
    tmp_col = np.empty(d)
    tmp_out = np.empty(d)
    for f in range(n_mats):
        for a in range(d):  # A was filled on the lower triangle: symmetrize
            for b in range(a):
                A[f, b, a] = A[f, a, b]
        _chol_grad(Ls[f], A[f], cdiag[f], grad, c_start + f * tri, d, tmp_col, tmp_out)
    return logp


@njit
def logp_diagonal(theta, grad, buf):
    """Log density and gradient for diagonal variances: variant (``buf[9]``) 0 'diag',
    1 'spherical', 2 EEI (one diagonal shared by the components), 3 EII (one shared
    variance; its prior has one inverse-gamma factor per feature, ``b`` of length D)."""
    n = int(buf[1])
    d = int(buf[2])
    k = int(buf[3])
    mean_form = int(buf[4])
    cov_prior = int(buf[5])
    logp = buf[6]
    kappa0 = buf[7]
    nu = buf[8]
    variant = int(buf[9])
    spherical = variant == 1 or variant == 3
    shared = variant >= 2
    off = 10
    X = buf[off : off + n * d].reshape((n, d))
    off += n * d
    alpha = buf[off : off + k]
    off += k
    m0 = buf[off : off + d]
    off += d
    P0 = buf[off : off + d * d].reshape((d, d))
    off += d * d
    nb = 1 if variant == 1 else d
    bvec = buf[off : off + nb]
    m_start = k - 1
    c_start = k - 1 + k * d
    nv = 1 if spherical else d  # variances per component
    logw = np.empty(k)
    w = np.empty(k)
    _weights(theta, k, logw, w)
    means = theta[m_start:c_start].reshape((k, d))
    logv = np.empty((k, nv))
    for j in range(k):
        for c in range(nv):
            logv[j, c] = theta[c_start + (0 if shared else j * nv) + c]
    inv = np.empty((k, nv))
    for j in range(k):
        for c in range(nv):
            inv[j, c] = math.exp(-logv[j, c])
    gv = np.zeros((k, nv))  # d logp / d log v
    gmu = np.zeros((k, d))
    counts = np.empty(k)
    for j in range(k):
        counts[j] = alpha[j]
    for j in range(k):
        logp += alpha[j] * logw[j]
    halfsum = np.zeros(k)  # 0.5 * sum_d log v_kd (log|Sigma_k| / 2)
    for j in range(k):
        for a in range(d):
            halfsum[j] += 0.5 * logv[j, 0 if spherical else a]
    lg = np.empty(k)
    ex = np.empty(k)
    for i in range(n):
        for j in range(k):
            q = 0.0
            for a in range(d):
                e = X[i, a] - means[j, a]
                q += e * e * inv[j, 0 if spherical else a]
            lg[j] = logw[j] - halfsum[j] - 0.5 * q
        top = lg[0]
        for j in range(1, k):
            top = max(top, lg[j])
        tot = 0.0
        for j in range(k):
            ex[j] = math.exp(lg[j] - top)
            tot += ex[j]
        logp += top + math.log(tot)
        inv_tot = 1.0 / tot
        for j in range(k):
            r = ex[j] * inv_tot
            if r == 0.0:
                continue
            counts[j] += r
            for a in range(d):
                c = 0 if spherical else a
                e = X[i, a] - means[j, a]
                gmu[j, a] += r * e * inv[j, c]
                gv[j, c] += 0.5 * r * (e * e * inv[j, c] - 1.0)
    if mean_form == 1:
        for j in range(k):
            for a in range(d):
                c = 0 if spherical else a
                e = means[j, a] - m0[a]
                logp += -0.5 * logv[j, c] - 0.5 * kappa0 * e * e * inv[j, c]
                gmu[j, a] -= kappa0 * e * inv[j, c]
                gv[j, c] += 0.5 * (kappa0 * e * e * inv[j, c] - 1.0)
    elif mean_form == 2:
        for j in range(k):
            for a in range(d):
                s = 0.0
                for b in range(d):
                    s += P0[a, b] * (means[j, b] - m0[b])
                logp -= 0.5 * (means[j, a] - m0[a]) * s
                gmu[j, a] -= s
    a0 = 0.5 * nu
    if shared:  # one set of variances: sum the components' gradients, prior once
        for j in range(1, k):
            for c in range(nv):
                gv[0, c] += gv[j, c]
    for j in range(1 if shared else k):
        for c in range(nv):
            logp += logv[j, c]  # log transform's Jacobian
            gv[j, c] += 1.0
            if cov_prior == 1:
                if variant == 3:  # EII: one factor per feature, all at the one variance
                    for f in range(d):
                        logp += -(a0 + 1.0) * logv[j, c] - bvec[f] * inv[j, c]
                        gv[j, c] += -(a0 + 1.0) + bvec[f] * inv[j, c]
                else:
                    b = bvec[0 if spherical else c]
                    logp += -(a0 + 1.0) * logv[j, c] - b * inv[j, c]
                    gv[j, c] += -(a0 + 1.0) + b * inv[j, c]
    _weights_grad(grad, w, counts, k)
    for j in range(k):
        for a in range(d):
            grad[m_start + j * d + a] = gmu[j, a]
    for j in range(1 if shared else k):
        for c in range(nv):
            grad[c_start + j * nv + c] = gv[j, c]
    return logp


# --------------------------------------------------------------------------------------
# VEI and EVI: volumes and log-shapes mapped onto the 'diag' kernel
# --------------------------------------------------------------------------------------


@njit
def logp_volume_shape(theta, grad, buf, shared_shape):
    """VEI (``shared_shape``: log-shape ``u`` (D), log-volumes (K)) and EVI (log-shapes
    ``u_k`` (K, D), one log-volume): after the weights and means, the zero-sum
    coordinates of the log-shape(s) (``D - 1`` per shape, PyMC's ``ZeroSumTransform``),
    then the log volume(s). Maps them to the per-component log variances
    ``log lambda_k + u_j`` (VEI) / ``log lambda + u_kj`` (EVI), evaluates the 'diag'
    kernel there (``buf`` is a 'diag' buffer: the prior is one inverse-gamma per
    variance, as MAP-EM's), replaces its log-transform Jacobian (one ``log v_kj`` per
    variance) by this parameterization's (one ``log lambda`` per volume; the zero-sum
    map is an isometry) and chains the gradient back."""
    d = int(buf[2])
    k = int(buf[3])
    c0 = k - 1 + k * d
    rows = 1 if shared_shape else k
    n_vol = k if shared_shape else 1
    v0 = c0 + rows * (d - 1)  # first log volume
    sq = math.sqrt(d)
    u = np.empty((rows, d))
    for r in range(rows):  # ZeroSumTransform.backward (extend_axis)
        z0 = c0 + r * (d - 1)
        total = 0.0
        for a in range(d - 1):
            total += theta[z0 + a]
        norm = total / (sq + d)
        for a in range(d - 1):
            u[r, a] = theta[z0 + a] - norm
        u[r, d - 1] = -total / sq
    full = np.empty(c0 + k * d)
    for i in range(c0):
        full[i] = theta[i]
    jac_diag = 0.0
    for j in range(k):
        lv = theta[v0 + (j if shared_shape else 0)]
        for a in range(d):
            value = lv + u[0 if shared_shape else j, a]
            full[c0 + j * d + a] = value
            jac_diag += value
    g = np.zeros(c0 + k * d)
    logp = logp_diagonal(full, g, buf)
    jac = 0.0
    for m in range(n_vol):
        jac += theta[v0 + m]
    logp += jac - jac_diag
    for i in range(c0):
        grad[i] = g[i]
    # d logp / d log v_kj without the 'diag' Jacobian's 1 per variance
    for i in range(k * d):
        g[c0 + i] -= 1.0
    for m in range(n_vol):
        grad[v0 + m] = 1.0  # this parameterization's Jacobian
    gu = np.zeros((rows, d))
    for j in range(k):
        for a in range(d):
            gj = g[c0 + j * d + a]
            grad[v0 + (j if shared_shape else 0)] += gj
            gu[0 if shared_shape else j, a] += gj
    for r in range(rows):  # the transpose of extend_axis
        z0 = c0 + r * (d - 1)
        head = 0.0
        for a in range(d - 1):
            head += gu[r, a]
        for a in range(d - 1):
            grad[z0 + a] = gu[r, a] - head / (sq + d) - gu[r, d - 1] / sq
    return logp


# --------------------------------------------------------------------------------------
# nutpie's C callbacks: compiled on first use (``cfunc_for``), cached on disk
# --------------------------------------------------------------------------------------

_LOGP_SIG = numba.types.int64(
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)
_EXPAND_SIG = numba.types.int64(
    numba.types.uint64,
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)


@njit
def _status(grad, value):
    """nutpie's return code: 0 fine, 3 a non-finite gradient, 4 a non-finite logp."""
    for i in range(grad.size):
        if not math.isfinite(grad[i]):
            return 3
    if not math.isfinite(value):
        return 4
    return 0


def _logp_c_spd(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_spd(x, out, buf)
    res[0] = value
    return _status(out, value)


def _logp_c_diagonal(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_diagonal(x, out, buf)
    res[0] = value
    return _status(out, value)


def _logp_c_vei(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_volume_shape(x, out, buf, True)
    res[0] = value
    return _status(out, value)


def _logp_c_evi(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_volume_shape(x, out, buf, False)
    res[0] = value
    return _status(out, value)


def _expand_c(dim, expanded, x_, out_, user_data_):
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    for i in range(dim):
        out[i] = x[i]
    return 0


_CFUNCS: dict = {}


def cfunc_for(kind: str):
    """The compiled callback: kind 'spd', 'diagonal', 'vei', 'evi' (logp + gradient) or
    'expand'."""
    if kind not in _CFUNCS:
        py, sig = {
            "spd": (_logp_c_spd, _LOGP_SIG),
            "diagonal": (_logp_c_diagonal, _LOGP_SIG),
            "vei": (_logp_c_vei, _LOGP_SIG),
            "evi": (_logp_c_evi, _LOGP_SIG),
            "expand": (_expand_c, _EXPAND_SIG),
        }[kind]
        _CFUNCS[kind] = numba.cfunc(sig, cache=True, nogil=True)(py)
    return _CFUNCS[kind]
