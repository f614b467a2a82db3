"""The numba kernels of :mod:`bayesgmm.bayes._kernel` (imported lazily: numba is heavy).

Module-level functions with ``cache=True``: numba stores their machine code on disk
(``NUMBA_CACHE_DIR`` or ``__pycache__``), so only the first process ever compiles them.
"""

import contextlib
import ctypes
import math
import os
import subprocess
import sys
import threading

import numba
import numpy as np

njit = numba.njit(cache=True, nogil=True, error_model="numpy")
# The two densities are inlined (at numba's IR level) into their C callbacks, the only
# compiled form of them: Python calls the callback too (:func:`evaluate`). A separately
# compiled njit function would be optimized by LLVM once on its own and once more
# inside the callback's module (about 2 s of a cold start).
_inlined = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


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


# Rows are processed in blocks of _BLOCK, all components at once, with the data stored
# feature-major (``X^T``, see ``_kernel.pack``) so that every inner loop runs over the
# rows of a block, contiguous in memory: LLVM vectorizes them (SIMD), and the forward
# substitution z = L^{-1}(x - mu) becomes D(D+1)/2 vector multiply-adds per block
# instead of a chain of scalar divisions per row.
_BLOCK = 128
# The log of the row totals is taken once per _LOG_GROUP rows, on their product (each
# total lies in [1, K], so the product cannot overflow for K < 10^19).
_LOG_GROUP = 16
# Exact IEEE arithmetic except contraction into FMA (the exp below relies on its
# Cody-Waite split staying in this order: no reassociation there).
_FM_EXACT = {"contract", "nsz"}
# Reductions over the rows of a block (sums of products): reassociation lets LLVM
# vectorize them (partial sums); no finite-math assumptions, so NaN/inf still propagate.
_FM_SUM = {"contract", "nsz", "reassoc"}

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # Cody-Waite split of log(2): k * _LN2_HI is exact
_LN2_LO = 1.42860682030941723212e-6


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM_EXACT)
def _exp_nonpositive(x, j, bits, nb):
    """x[j, :nb] = exp(x[j, :nb]) in place, for x <= 0, vectorizable (math.exp is a scalar
    libm call): exp(x) = 2^k exp(r), r = x - k log 2 in [-log(2)/2, log(2)/2], exp(r) by
    its Taylor polynomial of degree 13 (truncation < 1e-17), 2^k built in the exponent
    bits. Accurate to about 1 ulp; at -708 and below (where exp reaches the subnormals)
    it is 0: such a row carries a responsibility below 1e-307 for that component. NaN
    propagates."""
    for i in range(nb):
        v = x[j, i]
        w = max(v, -708.0)
        k = math.floor(w * _LOG2E + 0.5)
        r = w - k * _LN2_HI
        r = r - k * _LN2_LO
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        x[j, i] = p if v > -708.0 else (0.0 if v <= -708.0 else v)
        bits[i] = (np.int64(k) + 1023) << 52
    scale = bits.view(np.float64)
    for i in range(nb):
        x[j, i] *= scale[i]


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM_EXACT)
def _responsibilities(lg, k, nb, top, tot, bits):
    """Log-sum-exp over the components of a block: lg (K, block) holds
    log pi_k + log N(x_n | k) (up to a constant) on entry and the responsibilities
    r_kn on exit; returns sum_n log sum_k exp(lg_kn). One log per _LOG_GROUP rows."""
    for m in range(nb):
        top[m] = lg[0, m]
        tot[m] = 0.0
    for j in range(1, k):
        for m in range(nb):
            top[m] = max(top[m], lg[j, m])
    for j in range(k):
        for m in range(nb):
            lg[j, m] -= top[m]
        _exp_nonpositive(lg, j, bits, nb)
        for m in range(nb):
            tot[m] += lg[j, m]
    total = 0.0
    for m in range(nb):
        total += top[m]
    for g in range(0, nb, _LOG_GROUP):
        prod = 1.0
        for m in range(g, min(g + _LOG_GROUP, nb)):
            prod *= tot[m]
        total += math.log(prod)
    for m in range(nb):
        tot[m] = 1.0 / tot[m]
    for j in range(k):
        for m in range(nb):
            lg[j, m] *= tot[m]
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM_SUM)
def _accumulate(Z, r, j, f, W, nb, d, A, svec):
    """Responsibility-weighted statistics of component j (factor f) over a block of
    rows: returns sum_n r_jn; svec[j] += sum_n r_jn z_jn; lower triangle of
    A[f] += sum_n r_jn z_jn z_jn^T (Z: (K, D, block), r: (K, block), W: (D, block))."""
    total = 0.0
    for n in range(nb):
        total += r[j, n]
    for a in range(d):
        s = 0.0
        for n in range(nb):
            wv = r[j, n] * Z[j, a, n]
            W[a, n] = wv
            s += wv
        svec[j, a] += s
        for b in range(a + 1):
            t = 0.0
            for n in range(nb):
                t += W[a, n] * Z[j, b, n]
            A[f, a, b] += t
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM_EXACT)
def _mixture_spd(Xt, n, d, k, tied, logw, means, Ls, logdets, counts, cdiag, svec, A):
    """The likelihood part of logp_spd: returns sum_n log sum_k pi_k N(x_n | mu_k, L_k L_k^T)
    without the -N D log(2 pi) / 2 constant, and accumulates the responsibility-weighted
    statistics (counts, cdiag, svec, A) the gradient is built from. Xt: (D, N)."""
    bs = _BLOCK
    Z = np.empty((k, d, bs))
    lg = np.empty((k, bs))
    top = np.empty(bs)
    tot = np.empty(bs)
    bits = np.empty(bs, dtype=np.int64)
    W = np.empty((d, bs))
    inv_diag = np.empty((Ls.shape[0], d))
    for f in range(Ls.shape[0]):
        for a in range(d):
            inv_diag[f, a] = 1.0 / Ls[f, a, a]
    total = 0.0
    for i0 in range(0, n, bs):
        nb = min(bs, n - i0)
        for j in range(k):
            for m in range(nb):
                lg[j, m] = 0.0
        for a in range(d):  # forward substitution, vectorized over the rows
            # row a of the block as a contiguous view, indexed by the loop counter (a
            # computed index such as i0 + m may be negative for LLVM: its wraparound
            # select turns contiguous loads into gathers)
            xa = Xt[a, i0 : i0 + nb]
            for j in range(k):
                f = 0 if tied else j
                mu = means[j, a]
                for m in range(nb):
                    Z[j, a, m] = xa[m] - mu
                for b in range(a):
                    lab = Ls[f, a, b]
                    for m in range(nb):
                        Z[j, a, m] -= lab * Z[j, b, m]
                ia = inv_diag[f, a]
                for m in range(nb):
                    za = Z[j, a, m] * ia
                    Z[j, a, m] = za
                    lg[j, m] += za * za
        for j in range(k):
            c = logw[j] - logdets[0 if tied else j]
            for m in range(nb):
                lg[j, m] = c - 0.5 * lg[j, m]
        total += _responsibilities(lg, k, nb, top, tot, bits)
        for j in range(k):
            f = 0 if tied else j
            rsum = _accumulate(Z, lg, j, f, W, nb, d, A, svec)
            counts[j] += rsum
            cdiag[f] -= rsum
    return total


@_inlined
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
    Xt = buf[off : off + n * d].reshape((d, n))  # feature-major
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
    logp += _mixture_spd(Xt, n, d, k, tied, logw, means, Ls, logdets, counts, cdiag, svec, A)
    diff = np.empty(d)
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


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM_EXACT)
def _mixture_diagonal(Xt, n, d, k, spherical, logw, means, inv, halfsum, counts, gmu, gv):
    """The likelihood part of logp_diagonal, blocked like _mixture_spd: returns
    sum_n log sum_k pi_k N(x_n | mu_k, diag(v_k)) without the -N D log(2 pi) / 2
    constant; adds to counts (sum_n r_kn), gmu (d/d mu) and gv (d/d log v) per
    component. inv: (K, 1 or D) inverse variances; halfsum: sum_d log v_kd / 2."""
    bs = _BLOCK
    E = np.empty((k, d, bs))
    lg = np.empty((k, bs))
    top = np.empty(bs)
    tot = np.empty(bs)
    bits = np.empty(bs, dtype=np.int64)
    total = 0.0
    for i0 in range(0, n, bs):
        nb = min(bs, n - i0)
        for j in range(k):
            for m in range(nb):
                lg[j, m] = 0.0
        for a in range(d):
            xa = Xt[a, i0 : i0 + nb]  # contiguous, indexed by the loop counter
            for j in range(k):
                mu = means[j, a]
                ia = inv[j, 0 if spherical else a]
                for m in range(nb):
                    e = xa[m] - mu
                    E[j, a, m] = e
                    lg[j, m] += e * e * ia
        for j in range(k):
            c = logw[j] - halfsum[j]
            for m in range(nb):
                lg[j, m] = c - 0.5 * lg[j, m]
        total += _responsibilities(lg, k, nb, top, tot, bits)
        for j in range(k):
            counts[j] += _moments(E, lg, j, nb, d, gmu, gv, inv, spherical)
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM_SUM)
def _moments(E, r, j, nb, d, gmu, gv, inv, spherical):
    """Block sums for component j of a diagonal model: returns sum_n r and adds
    sum_n r e inv to gmu[j] and sum_n r (e^2 inv - 1) / 2 to gv[j] (e = x - mu)."""
    s0 = 0.0
    for m in range(nb):
        s0 += r[j, m]
    for a in range(d):
        c = 0 if spherical else a
        s1 = 0.0
        s2 = 0.0
        for m in range(nb):
            re = r[j, m] * E[j, a, m]
            s1 += re
            s2 += re * E[j, a, m]
        gmu[j, a] += s1 * inv[j, c]
        gv[j, c] += 0.5 * (s2 * inv[j, c] - s0)
    return s0


@_inlined
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
    Xt = buf[off : off + n * d].reshape((d, n))  # feature-major
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
    logp += _mixture_diagonal(Xt, n, d, k, spherical, logw, means, inv, halfsum, counts, gmu, gv)
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


@_inlined
def _volume_shape_variances(theta, d, k, shared_shape):
    """VEI / EVI coordinates -> the 'diag' kernel's vector (weights, means, then the
    per-component log variances ``log lambda_k + u_j`` (VEI) / ``log lambda + u_kj``
    (EVI)); returns it and the difference of the two log-Jacobians (this
    parameterization's one ``log lambda`` per volume minus the 'diag' kernel's one
    ``log v_kj`` per variance; the zero-sum map is an isometry)."""
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
    jac = 0.0
    for m in range(n_vol):
        jac += theta[v0 + m]
    return full, jac - jac_diag


@_inlined
def _volume_shape_gradient(grad, g, d, k, shared_shape):
    """Chain ``g``, the gradient in the 'diag' kernel's vector (its log-transform
    Jacobian included), back to the VEI / EVI coordinates (``grad``, written), with
    this parameterization's Jacobian."""
    c0 = k - 1 + k * d
    rows = 1 if shared_shape else k
    n_vol = k if shared_shape else 1
    v0 = c0 + rows * (d - 1)
    sq = math.sqrt(d)
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


@_inlined
def logp_volume_shape(theta, grad, buf, shared_shape):
    """VEI (``shared_shape``: log-shape ``u`` (D), log-volumes (K)) and EVI (log-shapes
    ``u_k`` (K, D), one log-volume): after the weights and means, the zero-sum
    coordinates of the log-shape(s) (``D - 1`` per shape, PyMC's ``ZeroSumTransform``),
    then the log volume(s). Maps them to the per-component log variances
    (:func:`_volume_shape_variances`), evaluates the 'diag' kernel there (``buf`` is a
    'diag' buffer: the prior is one inverse-gamma per variance, as MAP-EM's), replaces
    its log-transform Jacobian by this parameterization's and chains the gradient back
    (:func:`_volume_shape_gradient`)."""
    d = int(buf[2])
    k = int(buf[3])
    full, jac = _volume_shape_variances(theta, d, k, shared_shape)
    g = np.zeros(full.size)
    logp = logp_diagonal(full, g, buf) + jac
    _volume_shape_gradient(grad, g, d, k, shared_shape)
    return logp


# --------------------------------------------------------------------------------------
# Missing values (NaN): the rows with a missing coordinate, their observed marginals
# --------------------------------------------------------------------------------------
#
# A buffer of data with NaN (``_kernel.pack_missing``) is the complete rows' buffer,
# read by the kernels above unchanged, followed by a trailer and, as its last entry,
# the trailer's offset. The trailer: the number of patterns P, then per pattern
# ``p`` (observed coordinates), ``n`` (rows), the ``p`` observed indices and the rows'
# observed values (``p * n``, feature-major like the complete rows). The functions
# below add those rows' log-likelihood, each row's density of its observed coordinates
# ``sum_k pi_k N(x_o | mu_o, Sigma_oo)``, to the value, and its gradient to ``grad``;
# the -|o| log(2 pi) / 2 constants are in ``buf[6]``. A pattern's rows are complete
# data in ``p`` dimensions (the observed sub-vector and block of each component): they
# go through the same blocked functions as the complete rows (``_mixture_spd``,
# ``_mixture_diagonal``, compiled once for both), and only the chain rule from the
# observed block to the parameters is per pattern.


@njit
def _trailer_start(buf):
    return int(buf[int(buf[0]) - 1])


@njit
def _cholesky(S, C, p):
    """C (p, p) lower = the Cholesky factor of S (p, p); returns sum of log C_ii
    (NaN where S is not positive definite)."""
    logdet = 0.0
    for a in range(p):
        for b in range(a + 1):
            v = S[a, b]
            for c in range(b):
                v -= C[a, c] * C[b, c]
            if a == b:
                C[a, a] = math.sqrt(v) if v > 0.0 else math.nan
                logdet += math.log(C[a, a])
            else:
                C[a, b] = v / C[b, b]
        for b in range(a + 1, p):
            C[a, b] = 0.0
    return logdet


@njit
def _missing_spd(theta, grad, buf):
    """The rows with NaN for 'full' / 'tied' (``buf`` as for ``logp_spd``, with the
    trailer): returns their observed-data log-likelihood and adds its gradient to
    ``grad``. Per pattern ``o`` and factor: :math:`\\Sigma_{oo} = L_o L_o^T`
    (``L_o`` the rows ``o`` of ``L``) and its Cholesky factor ``C``; then the
    pattern's rows are complete data in ``|o|`` dimensions with factor ``C``: the
    blocked :func:`_mixture_spd` gives their log-likelihood and, with
    ``z = C^{-1}(x_o - mu_o)`` and responsibilities ``r``, the sums of ``r``,
    ``r z`` and ``r z z^T``. The gradient in :math:`\\Sigma_{oo}` is
    ``G = C^{-T}(sum r z z^T - (sum r) I) C^{-1} / 2``, embedded in D x D and chained
    to ``L`` by ``2 G L`` (lower triangle); in ``mu_o`` it is ``C^{-T} sum r z``."""
    d = int(buf[2])
    k = int(buf[3])
    tied = buf[9] != 0.0
    pos = _trailer_start(buf)
    n_pat = int(buf[pos])
    pos += 1
    if n_pat == 0:
        return 0.0
    tri = d * (d + 1) // 2
    n_mats = 1 if tied else k
    m_start = k - 1
    c_start = k - 1 + k * d
    logw = np.empty(k)
    w = np.empty(k)
    _weights(theta, k, logw, w)
    Ls = np.empty((n_mats, d, d))
    for f in range(n_mats):
        _unpack_chol(theta, c_start + f * tri, d, Ls[f])
    means = theta[m_start:c_start].reshape((k, d))
    Gemb = np.zeros((n_mats, d, d))  # d logp / d Sigma, embedded
    gmu = np.zeros((k, d))
    counts = np.zeros(k)
    idx = np.empty(d, dtype=np.int64)
    M = np.empty((d, d))
    T = np.empty((d, d))
    col = np.empty(d)
    out = np.empty(d)
    total = 0.0
    for _ in range(n_pat):
        p = int(buf[pos])
        nr = int(buf[pos + 1])
        pos += 2
        for a in range(p):
            idx[a] = int(buf[pos + a])
        pos += p
        Xt = buf[pos : pos + p * nr].reshape((p, nr))  # feature-major
        pos += p * nr
        Cs = np.empty((n_mats, p, p))
        logdets = np.empty(n_mats)
        S = np.empty((p, p))
        for f in range(n_mats):  # Sigma_oo = L_o L_o^T and its factor
            L = Ls[f]
            for a in range(p):
                ia = idx[a]
                for b in range(a + 1):
                    ib = idx[b]  # ib < ia: L[ib, c] = 0 for c > ib
                    v = 0.0
                    for c in range(ib + 1):
                        v += L[ia, c] * L[ib, c]
                    S[a, b] = v
            logdets[f] = _cholesky(S, Cs[f], p)
        mo = np.empty((k, p))
        for j in range(k):
            for a in range(p):
                mo[j, a] = means[j, idx[a]]
        cnt = np.zeros(k)
        cdiag = np.zeros(n_mats)  # - sum r per factor
        svec = np.zeros((k, p))
        A = np.zeros((n_mats, p, p))
        total += _mixture_spd(Xt, nr, p, k, tied, logw, mo, Cs, logdets, cnt, cdiag, svec, A)
        for j in range(k):
            f = 0 if tied else j
            counts[j] += cnt[j]
            _backward(Cs[f], svec[j], out, p)  # S^{-1} sum r (x_o - mu_o)
            for a in range(p):
                gmu[j, idx[a]] += out[a]
        for f in range(n_mats):
            C = Cs[f]
            for a in range(p):  # M = sum r z z^T - (sum r) I (A: lower triangle)
                for b in range(a + 1):
                    M[a, b] = A[f, a, b]
                    M[b, a] = A[f, a, b]
                M[a, a] += cdiag[f]
            for c in range(p):  # T = C^{-T} M, column by column
                for a in range(p):
                    col[a] = M[a, c]
                _backward(C, col, out, p)
                for a in range(p):
                    T[a, c] = out[a]
            for c in range(p):  # G = C^{-T} T^T (= T C^{-1}, symmetric)
                for a in range(p):
                    col[a] = T[c, a]
                _backward(C, col, out, p)
                for a in range(p):
                    Gemb[f, idx[a], idx[c]] += 0.5 * out[a]
    for f in range(n_mats):  # d logp / d L = 2 G L, lower triangle; log diagonal
        L = Ls[f]
        q = c_start + f * tri
        for a in range(d):
            for b in range(a + 1):
                v = 0.0
                for c in range(b, d):
                    v += Gemb[f, a, c] * L[c, b]
                v *= 2.0
                grad[q] += v * L[a, a] if a == b else v
                q += 1
    for j in range(k):
        for a in range(d):
            grad[m_start + j * d + a] += gmu[j, a]
    gw = np.zeros(k)
    _weights_grad(gw, w, counts, k)
    for j in range(k - 1):
        grad[j] += gw[j]
    return total


@njit
def _missing_diagonal(theta, grad, buf):
    """The rows with NaN for the diagonal variants (``buf`` as for ``logp_diagonal``,
    with the trailer; VEI / EVI call it on their 'diag' vector): returns their
    observed-data log-likelihood and adds its gradient to ``grad``. A row's density of
    its observed coordinates is the product over them (the missing ones drop out): per
    pattern, the blocked :func:`_mixture_diagonal` on the observed coordinates."""
    d = int(buf[2])
    k = int(buf[3])
    variant = int(buf[9])
    spherical = variant == 1 or variant == 3
    shared = variant >= 2
    pos = _trailer_start(buf)
    n_pat = int(buf[pos])
    pos += 1
    if n_pat == 0:
        return 0.0
    m_start = k - 1
    c_start = k - 1 + k * d
    nv = 1 if spherical else d
    logw = np.empty(k)
    w = np.empty(k)
    _weights(theta, k, logw, w)
    means = theta[m_start:c_start].reshape((k, d))
    logv = np.empty((k, nv))
    inv = np.empty((k, nv))
    for j in range(k):
        for c in range(nv):
            logv[j, c] = theta[c_start + (0 if shared else j * nv) + c]
            inv[j, c] = math.exp(-logv[j, c])
    gv = np.zeros((k, nv))
    gmu = np.zeros((k, d))
    counts = np.zeros(k)
    idx = np.empty(d, dtype=np.int64)
    total = 0.0
    for _ in range(n_pat):
        p = int(buf[pos])
        nr = int(buf[pos + 1])
        pos += 2
        for a in range(p):
            idx[a] = int(buf[pos + a])
        pos += p
        Xt = buf[pos : pos + p * nr].reshape((p, nr))  # feature-major
        pos += p * nr
        nvo = 1 if spherical else p
        mo = np.empty((k, p))
        invo = np.empty((k, nvo))
        halfo = np.zeros(k)  # sum_{a in o} log v_ka / 2
        for j in range(k):
            for a in range(p):
                mo[j, a] = means[j, idx[a]]
                halfo[j] += 0.5 * logv[j, 0 if spherical else idx[a]]
            for c in range(nvo):
                invo[j, c] = inv[j, 0 if spherical else idx[c]]
        cnt = np.zeros(k)
        gmuo = np.zeros((k, p))
        gvo = np.zeros((k, nvo))
        total += _mixture_diagonal(Xt, nr, p, k, spherical, logw, mo, invo, halfo, cnt, gmuo, gvo)
        for j in range(k):
            counts[j] += cnt[j]
            for a in range(p):
                gmu[j, idx[a]] += gmuo[j, a]
            for c in range(nvo):
                gv[j, 0 if spherical else idx[c]] += gvo[j, c]
    for j in range(k):
        for a in range(d):
            grad[m_start + j * d + a] += gmu[j, a]
        for c in range(nv):
            grad[c_start + (0 if shared else j * nv) + c] += gv[j, c]
    gw = np.zeros(k)
    _weights_grad(gw, w, counts, k)
    for j in range(k - 1):
        grad[j] += gw[j]
    return total


@_inlined
def logp_volume_shape_missing(theta, grad, buf, shared_shape):
    """:func:`logp_volume_shape` on data with NaN: the rows with a missing coordinate
    enter at the 'diag' vector (:func:`_missing_diagonal`), before the chain rule."""
    d = int(buf[2])
    k = int(buf[3])
    full, jac = _volume_shape_variances(theta, d, k, shared_shape)
    g = np.zeros(full.size)
    logp = logp_diagonal(full, g, buf) + jac
    logp += _missing_diagonal(full, g, buf)
    _volume_shape_gradient(grad, g, d, k, shared_shape)
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


def _logp_c_spd_missing(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_spd(x, out, buf)
    value += _missing_spd(x, out, buf)
    res[0] = value
    return _status(out, value)


def _logp_c_diagonal_missing(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_diagonal(x, out, buf)
    value += _missing_diagonal(x, out, buf)
    res[0] = value
    return _status(out, value)


def _logp_c_vei_missing(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_volume_shape_missing(x, out, buf, True)
    res[0] = value
    return _status(out, value)


def _logp_c_evi_missing(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (1,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    res = numba.carray(logp_, (1,))
    value = logp_volume_shape_missing(x, out, buf, False)
    res[0] = value
    return _status(out, value)


def _expand_c(dim, expanded, x_, out_, user_data_):
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    for i in range(dim):
        out[i] = x[i]
    return 0


_CFUNCS: dict = {}
_CHILD = "BAYESGMM_KERNEL_CHILD"  # set in the child that compiles: it compiles itself
_CHILDREN: dict = {}  # kind -> the child process compiling it
_CFUNC_LOCK = threading.Lock()
_KINDS = {
    "spd": (_logp_c_spd, _LOGP_SIG),
    "diagonal": (_logp_c_diagonal, _LOGP_SIG),
    "vei": (_logp_c_vei, _LOGP_SIG),
    "evi": (_logp_c_evi, _LOGP_SIG),
    # data with NaN (``_kernel.pack_missing``): the complete rows' kernel plus the
    # observed marginals of the others
    "spd_missing": (_logp_c_spd_missing, _LOGP_SIG),
    "diagonal_missing": (_logp_c_diagonal_missing, _LOGP_SIG),
    "vei_missing": (_logp_c_vei_missing, _LOGP_SIG),
    "evi_missing": (_logp_c_evi_missing, _LOGP_SIG),
    "expand": (_expand_c, _EXPAND_SIG),
}


def cfunc_for(kind: str):
    """The compiled callback: kind 'spd', 'diagonal', 'vei', 'evi' (logp + gradient),
    the same with '_missing' (data with NaN), or 'expand'.

    Loaded from numba's disk cache when it holds the callback. Otherwise a child
    process compiles it (and writes the cache) and this one loads it: a process that
    compiles the callback itself runs slightly different machine code from the one it
    caches (the callees it compiled on the way are linked in place of the cached
    copies, whose row sums LLVM vectorized in another order), so its draws would differ
    in the last bits from every later process's. Loading in every process makes the
    same ``random_state`` give the same draws everywhere. If the child cannot run or
    the cache cannot be written, the callback is compiled here, as numba would.
    :func:`start_compiling` starts the child early, so that it compiles while this
    process does other work."""
    with _CFUNC_LOCK:
        if kind not in _CFUNCS:
            py, sig = _KINDS[kind]
            start_compiling(kind)
            child = _CHILDREN.pop(kind, None)
            if child is not None:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    child.wait()
            _CFUNCS[kind] = numba.cfunc(sig, cache=True, nogil=True)(py)
        return _CFUNCS[kind]


def start_compiling(kind: str) -> None:
    """Start a child process compiling (and caching) the callback ``kind`` unless the
    cache holds it, it is loaded already or a child is at it; returns at once.
    :func:`cfunc_for` waits for the child. 'expand' calls no other compiled function,
    so it is compiled in this process, when asked for."""
    if kind == "expand" or kind in _CFUNCS or kind in _CHILDREN or os.environ.get(_CHILD):
        return
    py, sig = _KINDS[kind]
    if _in_cache(py, sig):
        return
    code = _CHILD_CODE.format(name=__name__, path=os.path.abspath(__file__), kind=kind)
    with contextlib.suppress(OSError, subprocess.SubprocessError):  # else: compile here
        _CHILDREN[kind] = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, _CHILD: "1"},
        )


def _in_cache(py, sig) -> bool:
    """Whether numba's disk cache holds a current entry for ``py`` compiled at ``sig``
    (the check numba's ``CFunc.compile`` makes, without loading it)."""
    try:
        from numba.core.caching import FunctionCache
        from numba.core.registry import cpu_target

        cache = FunctionCache(py)
        key = cache._index_key(sig, cpu_target.target_context.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # numba internals moved: behave as numba does (compile here)
        return True


# The child loads this file alone, not the bayesgmm package (numba's cache key is the
# file and the function's code), so it starts in well under a second.
_CHILD_CODE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location({name!r}, {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
module.cfunc_for({kind!r})
"""


_DOUBLE_P = ctypes.POINTER(ctypes.c_double)


def evaluate(kind: str, theta: np.ndarray, buf: np.ndarray) -> tuple[float, np.ndarray]:
    """(logp, gradient) at ``theta`` (contiguous float64) from Python, through the C
    callback of ``kind`` ('spd' or 'diagonal') that nutpie calls."""
    fn = cfunc_for(kind).ctypes
    grad = np.zeros(theta.size)
    value = np.zeros(1)
    fn(
        theta.size,
        theta.ctypes.data_as(_DOUBLE_P),
        grad.ctypes.data_as(_DOUBLE_P),
        value.ctypes.data_as(_DOUBLE_P),
        buf.ctypes.data_as(ctypes.c_void_p),
    )
    return float(value[0]), grad
