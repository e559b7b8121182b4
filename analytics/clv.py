"""Predictive customer lifetime value: BG/NBD purchase counts and Gamma-Gamma spend.

Pure NumPy/SciPy, no Django: every function takes and returns arrays, one element per customer,
so the caller decides where the data come from (an ORM aggregate, a CSV, a simulation).

Notation (all of it from the papers):

* ``x``: number of *repeat* transactions in the observation window (the first purchase is not
  counted). A transaction is one purchase *day*: several purchases on the same calendar day count
  as one, as in the CDNOW data the models were published on.
* ``t_x``: time of the last repeat transaction, measured from the first purchase (0 when x = 0).
* ``T``: the customer's age: time from the first purchase to the end of the observation window.
* ``m_x``: mean value of the x repeat transactions (the first transaction's value is left out).

Time is in whatever unit the caller built the summary in (days or weeks, see :func:`rfm_summary`);
the fitted ``alpha`` (BG/NBD) is in that unit, and every horizon ``t`` must be in it too.

References:

* [BG/NBD] Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to
  the Pareto/NBD Model", Marketing Science 24(2), 275-284. Equation numbers below are this paper's.
* [P(alive)] Fader, Hardie & Lee (2008), "Computing P(alive) Using the BG/NBD Model" (note).
* [RFM-CLV] Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", Journal of Marketing Research 42(4), 415-430.
* [GG] Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note).

Model assumptions worth knowing before trusting the numbers: purchases of a live customer are Poisson
with a customer-specific rate; after every repeat purchase a customer drops out for good with a
customer-specific probability; rates and dropout probabilities are independent across customers
(gamma and beta mixing); spend per transaction is independent of the purchase process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import OptimizeResult, minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

FloatArray = npt.NDArray[np.float64]
TimeUnit = Literal["days", "weeks"]

#: Length of one time unit in days.
DAYS_PER_UNIT: dict[str, float] = {"days": 1.0, "weeks": 7.0}
#: Length of an average Gregorian month in days (365.2425 / 12), used to turn months into model time.
DAYS_PER_MONTH = 365.2425 / 12

#: Fewest customers a fit accepts. Four (BG/NBD) or three (Gamma-Gamma) parameters need far more
#: than this to be estimated well (hundreds at least); below it the fit is refused outright.
MIN_CUSTOMERS_TO_FIT = 10

# Fits run on log-parameters; these bounds keep exp() finite. A parameter that ends on a bound means
# the likelihood has no interior maximum in that direction (for example b -> infinity: nobody drops
# out), and the fit is reported as not converged.
_LOG_PARAM_BOUND = 18.0
# Largest gradient of the mean negative log-likelihood (per customer, on log-parameters) accepted as
# an optimum.
_GRADIENT_TOLERANCE = 1e-6
# Step used to get around the removable singularities of equation (10) (a = 1, and a + b - 1 = 0
# for x = 0): there the value is interpolated between both sides, accurate to O(step**2).
_SINGULARITY_STEP = 1e-5


# --------------------------------------------------------------------------------------------------
# Parameters and results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD parameters: purchase rate lambda ~ Gamma(shape r, rate alpha), dropout p ~ Beta(a, b).

    ``alpha`` is in the time unit of the data it was fitted on (the mean purchase rate is r / alpha
    transactions per unit of time).
    """

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"BG/NBD parameter {name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class BGNBDFit:
    """Result of :func:`bgnbd_fit`: the maximum-likelihood parameters and how the search ended."""

    params: BGNBDParams
    log_likelihood: float
    converged: bool
    n_customers: int
    iterations: int
    message: str


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: spend per transaction z ~ Gamma(shape p, rate nu), nu ~ Gamma(q, gamma).

    ``gamma`` is in currency units. The mean spend per transaction in the population is
    p * gamma / (q - 1), finite only when q > 1.
    """

    p: float
    q: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("p", "q", "gamma"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"Gamma-Gamma parameter {name} must be a positive finite number, got {value!r}")

    @property
    def population_mean_spend(self) -> float:
        """E(M) = p gamma / (q - 1); infinite when q <= 1."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


@dataclass(frozen=True)
class GammaGammaFit:
    """Result of :func:`gamma_gamma_fit`."""

    params: GammaGammaParams
    log_likelihood: float
    converged: bool
    n_customers: int
    iterations: int
    message: str


@dataclass(frozen=True)
class RFMSummary:
    """Per-customer summary built by :func:`rfm_summary`; all arrays are aligned with ``customer_ids``."""

    customer_ids: np.ndarray
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    m_x: FloatArray | None
    time_unit: TimeUnit


# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


def _as_float_array(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _validate_rfm(
    x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike, *, for_fit: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check (x, t_x, T) and return them as float arrays broadcast to one shape."""
    xa = _as_float_array("x", x)
    txa = _as_float_array("t_x", t_x)
    Ta = _as_float_array("T", T)
    if for_fit:
        if xa.ndim != 1 or txa.ndim != 1 or Ta.ndim != 1:
            raise ValueError("x, t_x and T must be one-dimensional arrays (one element per customer)")
        if not (len(xa) == len(txa) == len(Ta)):
            raise ValueError(f"x, t_x and T must have the same length, got {len(xa)}, {len(txa)} and {len(Ta)}")
    try:
        xa, txa, Ta = np.broadcast_arrays(xa, txa, Ta)
    except ValueError as exc:
        raise ValueError(f"x, t_x and T have incompatible shapes: {exc}") from exc
    if np.any(xa < 0):
        raise ValueError("x (number of repeat transactions) must not be negative")
    if np.any(xa != np.floor(xa)):
        raise ValueError("x (number of repeat transactions) must be a whole number")
    if np.any(txa < 0):
        raise ValueError("t_x (time of the last repeat transaction) must not be negative")
    if np.any(Ta < 0):
        raise ValueError("T (time since the first purchase) must not be negative")
    if np.any(txa > Ta):
        raise ValueError("t_x must not exceed T: the last repeat transaction cannot come after the observation end")
    if np.any((xa > 0) & (txa == 0)):
        raise ValueError("t_x must be positive when x > 0: a repeat transaction happens after the first purchase")
    if np.any((xa == 0) & (txa != 0)):
        raise ValueError("t_x must be 0 when x = 0: a customer with no repeat transaction has no recency")
    return xa, txa, Ta


def _validate_horizon(t: npt.ArrayLike) -> FloatArray:
    ta = _as_float_array("t (forecast horizon)", t)
    if np.any(ta < 0):
        raise ValueError("t (forecast horizon) must not be negative")
    return ta


def _validate_spend(x: npt.ArrayLike, m_x: npt.ArrayLike, *, for_fit: bool) -> tuple[FloatArray, FloatArray]:
    xa = _as_float_array("x", x)
    ma = _as_float_array("m_x", m_x)
    if for_fit:
        if xa.ndim != 1 or ma.ndim != 1:
            raise ValueError("x and m_x must be one-dimensional arrays (one element per customer)")
        if len(xa) != len(ma):
            raise ValueError(f"x and m_x must have the same length, got {len(xa)} and {len(ma)}")
    try:
        xa, ma = np.broadcast_arrays(xa, ma)
    except ValueError as exc:
        raise ValueError(f"x and m_x have incompatible shapes: {exc}") from exc
    if np.any(xa < 0):
        raise ValueError("x (number of repeat transactions) must not be negative")
    if np.any(xa != np.floor(xa)):
        raise ValueError("x (number of repeat transactions) must be a whole number")
    if np.any(ma < 0):
        raise ValueError("m_x (mean spend per repeat transaction) must not be negative; exclude refunds first")
    return xa, ma


# --------------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------------


def bgnbd_log_likelihood(params: BGNBDParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
    """Per-customer log-likelihood ln L(r, alpha, a, b | x, t_x, T) [BG/NBD, eq. 6].

    L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))

    computed in log space, the sum of the two terms with ``logaddexp`` so that neither underflows.
    """
    xa, txa, Ta = _validate_rfm(x, t_x, T, for_fit=False)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + xa) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    term1 = betaln(a, b + xa) - (r + xa) * np.log(alpha + Ta)
    positive = xa > 0
    # b + x - 1 > 0 wherever x >= 1; the placeholder keeps betaln away from b - 1 <= 0 when x = 0.
    term2 = betaln(a + 1, np.where(positive, b + xa - 1, 1.0)) - (r + xa) * np.log(alpha + txa)
    return common + np.where(positive, np.logaddexp(term1, term2), term1)


def _dot(u: FloatArray, v: FloatArray) -> float:
    """Sum of u * v. np.dot goes through BLAS, whose thread start-up costs more than the sum itself here."""
    return float((u * v).sum())


class _BGNBDData:
    """Sufficient pieces of (x, t_x, T) for the likelihood, grouped so that each evaluation does as
    little per-customer work as possible: functions of x alone are computed once per distinct x."""

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> None:
        self.n = len(x)
        zero = x == 0
        self.n_zero = int(zero.sum())
        self.T_zero = T[zero]
        positive = ~zero
        self.x_pos = x[positive]
        self.t_x_pos = t_x[positive]
        self.T_pos = T[positive]
        self.x_levels, self.x_index, counts = np.unique(self.x_pos, return_inverse=True, return_counts=True)
        self.x_counts = counts.astype(np.float64)
        self.n_pos = len(self.x_pos)
        self.sum_x = float(self.x_pos.sum())


def _bgnbd_negative_ll_and_gradient(theta: FloatArray, data: _BGNBDData) -> tuple[float, FloatArray]:
    """-(total log-likelihood) / n and its gradient with respect to the log-parameters.

    Derivatives of eq. (6), with psi the digamma function and w1, w2 the shares of the two terms of
    L (w1 + w2 = 1, w2 = 0 when x = 0):
      d lnL/dr     = psi(r+x) - psi(r) + ln alpha - w1 ln(alpha+T) - w2 ln(alpha+t_x)
      d lnL/dalpha = r/alpha - (r+x) (w1/(alpha+T) + w2/(alpha+t_x))
      d lnL/da     = psi(a+b) - psi(a) + w1 (psi(a) - psi(a+b+x)) + w2 (psi(a+1) - psi(a+b+x))
      d lnL/db     = psi(a+b) - psi(b) + w1 (psi(b+x) - psi(a+b+x)) + w2 (psi(b+x-1) - psi(a+b+x))
    """
    r, alpha, a, b = np.exp(theta)
    ll = 0.0
    grad = np.zeros(4)

    # Customers with x = 0: ln L = r ln alpha - r ln(alpha + T).
    if data.n_zero:
        log_alpha_T0 = np.log(alpha + data.T_zero)
        ll += data.n_zero * r * np.log(alpha) - r * log_alpha_T0.sum()
        grad[0] += data.n_zero * np.log(alpha) - log_alpha_T0.sum()
        grad[1] += data.n_zero * r / alpha - r * np.sum(1.0 / (alpha + data.T_zero))

    if data.n_pos:
        levels, index, counts = data.x_levels, data.x_index, data.x_counts
        b1 = betaln(a, b + levels)
        b2 = betaln(a + 1, b + levels - 1)
        r_plus_x = r + data.x_pos
        alpha_T = alpha + data.T_pos
        alpha_tx = alpha + data.t_x_pos
        log_alpha_T = np.log(alpha_T)
        log_alpha_tx = np.log(alpha_tx)
        log_ratio = log_alpha_T - log_alpha_tx
        # ln L - common = term1 + ln(1 + e^diff) with diff = term2 - term1 (the logaddexp of the two
        # terms), written out so that one exp serves both the softplus and the weight w2 = expit(diff).
        term1 = b1[index] - r_plus_x * log_alpha_T
        diff = (b2 - b1)[index] + r_plus_x * log_ratio
        e = np.exp(-np.abs(diff))
        softplus = np.maximum(diff, 0.0) + np.log1p(e)
        w2 = np.where(diff > 0, 1.0, e) / (1.0 + e)

        per_level = gammaln(r + levels) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        ll += _dot(counts, per_level) + float(term1.sum()) + float(softplus.sum())

        w2_by_level = np.bincount(index, weights=w2, minlength=len(levels))
        w1_by_level = counts - w2_by_level
        psi_abx = digamma(a + b + levels)
        # w1 ln(alpha+T) + w2 ln(alpha+t_x) = ln(alpha+T) - w2 ln((alpha+T)/(alpha+t_x)), and likewise
        # for the reciprocals, which saves forming w1.
        grad[0] += (
            _dot(counts, digamma(r + levels) - digamma(r) + np.log(alpha))
            - float(log_alpha_T.sum())
            + _dot(w2, log_ratio)
        )
        inv_alpha_T = 1.0 / alpha_T
        grad[1] += data.n_pos * r / alpha - _dot(r_plus_x, inv_alpha_T + w2 * (1.0 / alpha_tx - inv_alpha_T))
        grad[2] += (
            data.n_pos * (digamma(a + b) - digamma(a))
            + _dot(w1_by_level, digamma(a) - psi_abx)
            + _dot(w2_by_level, digamma(a + 1) - psi_abx)
        )
        grad[3] += (
            data.n_pos * (digamma(a + b) - digamma(b))
            + _dot(w1_by_level, digamma(b + levels) - psi_abx)
            + _dot(w2_by_level, digamma(b + levels - 1) - psi_abx)
        )

    # Chain rule for theta = ln(params), scaled by 1/n so that tolerances do not depend on n.
    scale = -1.0 / data.n
    return scale * ll, scale * grad * np.array([r, alpha, a, b])


def _bgnbd_starting_points(data: _BGNBDData) -> list[FloatArray]:
    # Mean purchase rate r/alpha ~ repeat transactions per unit of customer age.
    total_age = float(data.T_zero.sum() + data.T_pos.sum())
    rate = max(data.sum_x / max(total_age, 1e-12), 1e-6)
    starts = []
    for r0, a0, b0 in ((1.0, 1.0, 1.0), (0.5, 0.5, 2.0), (2.0, 2.0, 5.0)):
        starts.append(np.log(np.array([r0, r0 / rate, a0, b0])))
    return starts


def _minimise_on_log_scale(
    objective: Callable[[FloatArray, Any], tuple[float, FloatArray]], data: Any, starts: Sequence[FloatArray]
) -> tuple[OptimizeResult, bool, bool]:
    """Run L-BFGS-B from each start; stop at the first clean interior optimum, else keep the best.

    Returns (result, converged, at_bound). Converged means: a finite optimum inside the bounds where
    the gradient of the mean negative log-likelihood is below _GRADIENT_TOLERANCE in every log-parameter.
    L-BFGS-B's own success flag is not required: with tolerances this tight it sometimes ends with an
    "ABNORMAL" line search at a point that is already the optimum.
    """
    bounds = [(-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)] * len(starts[0])
    best: tuple[OptimizeResult, bool, bool] | None = None
    for start in starts:
        result = minimize(
            objective,
            start,
            args=(data,),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
        )
        at_bound = bool(np.any(np.abs(result.x) >= _LOG_PARAM_BOUND - 1e-6))
        finite = bool(np.isfinite(result.fun))
        stationary = finite and bool(np.max(np.abs(objective(result.x, data)[1])) < _GRADIENT_TOLERANCE)
        clean = finite and stationary and not at_bound
        if best is None or (finite and not (result.fun >= best[0].fun)):
            best = (result, clean, at_bound)
        if clean:
            break
    assert best is not None
    return best


def bgnbd_fit(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> BGNBDFit:
    """Fit the BG/NBD model by maximum likelihood [BG/NBD, eq. 6] to per-customer (x, t_x, T).

    The search runs on ln(r), ln(alpha), ln(a), ln(b) with the analytic gradient (L-BFGS-B); if it
    does not end cleanly it is retried from other starting points. ``converged`` is False when the
    optimiser failed or a parameter ran to its bound (e^+-18), which happens when the data carry no
    information about it (for example nobody seems to drop out, b -> infinity). The work per
    iteration is a handful of vectorised operations over the customers, so a million customers fit
    in seconds.
    """
    xa, txa, Ta = _validate_rfm(x, t_x, T, for_fit=True)
    if len(xa) < MIN_CUSTOMERS_TO_FIT:
        raise ValueError(f"too few customers to fit the BG/NBD model: {len(xa)} (need at least {MIN_CUSTOMERS_TO_FIT})")
    if not np.any(xa > 0):
        raise ValueError("cannot fit the BG/NBD model: no customer has a repeat transaction (all x are 0)")
    if not np.any(Ta > 0):
        raise ValueError("cannot fit the BG/NBD model: every customer has T = 0 (no time observed)")
    data = _BGNBDData(xa, txa, Ta)
    result, clean, at_bound = _minimise_on_log_scale(
        _bgnbd_negative_ll_and_gradient, data, _bgnbd_starting_points(data)
    )
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    message = str(result.message)
    if at_bound:
        message = f"a parameter reached its bound (the likelihood has no interior maximum): {message}"
    return BGNBDFit(
        params=BGNBDParams(r=r, alpha=alpha, a=a, b=b),
        log_likelihood=float(-result.fun * data.n),
        converged=clean,
        n_customers=data.n,
        iterations=int(result.nit),
        message=message,
    )


def _bgnbd_forecast_numerator(params: BGNBDParams, t: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
    """The numerator of eq. (10), for x, T and t broadcast together:

        (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],
        z = t/(alpha+T+t).

    Evaluated through Euler's transformation 2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z),
    which turns the bracketed product into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z). In that form
    only C grows with x and the series converges faster as x grows, where the original form has
    A, B ~ x and C - A - B = a-1-r-x, for which scipy's hyp2f1 returns NaN or loses digits at large
    x (checked against mpmath at 40 digits over r, a in [0.02, 20], b in [0.05, 50], x <= 2000,
    horizons up to 5000 units: relative error below 2e-9 for the transformed form).

    The expression has removable singularities at a = 1 and (for x = 0) at a+b-1 = 0; within
    _SINGULARITY_STEP of them it is interpolated linearly between the values just either side.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t, x, T = np.broadcast_arrays(t, x, T)
    z = t / (alpha + T + t)

    def value(a_: float, b_: float) -> FloatArray:
        c = a_ + b_ + x - 1
        hyp = hyp2f1(a_ + b_ - 1 - r, a_ - 1, c, z)
        return c / (a_ - 1) * (1.0 - np.exp((a_ - 1) * np.log1p(-z)) * hyp)

    def value_around_a_one(b_: float) -> FloatArray:
        if abs(a - 1) >= step:
            return value(a, b_)
        below, above = value(1 - step, b_), value(1 + step, b_)
        return below + (a - (1 - step)) / (2 * step) * (above - below)

    step = _SINGULARITY_STEP
    with np.errstate(divide="ignore", invalid="ignore"):
        out = value_around_a_one(b)
        # For x = 0 the third 2F1 parameter is a+b-1; at 0 each factor is singular, the product is not.
        near_c_zero = (x == 0) & (abs(a + b - 1) < step)
        if np.any(near_c_zero):
            b_below, b_above = 1 - a - step, 1 - a + step
            below, above = value_around_a_one(b_below), value_around_a_one(b_above)
            out = np.where(near_c_zero, below + (b - b_below) / (2 * step) * (above - below), out)
    # At t = 0 the forecast is exactly 0 (z = 0, 2F1 = 1); written out so no 0 * inf sneaks in.
    out = np.where(t == 0, 0.0, out)
    if not np.all(np.isfinite(out)):
        raise ArithmeticError(
            "BG/NBD forecast is not finite for some customers (the hypergeometric function did not "
            f"converge) with parameters {params}"
        )
    return out


def _log_dropout_odds(params: BGNBDParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """ln[a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)] for x > 0, -inf for x = 0.

    This is the log of the odds that the customer has already dropped out [P(alive)]; it is
    kept in log space because the power overflows for heavy buyers who have gone quiet.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    positive = x > 0
    safe_b = np.where(positive, b + x - 1, 1.0)
    odds = np.log(a) - np.log(safe_b) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(positive, odds, -np.inf)


def bgnbd_probability_alive(params: BGNBDParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
    """P(alive | r, alpha, a, b, x, t_x, T) [P(alive)]:

        P(alive) = 1 / (1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))

    A customer with no repeat transaction is alive with probability 1: in the BG/NBD model dropout
    can only happen right after a repeat purchase.
    """
    xa, txa, Ta = _validate_rfm(x, t_x, T, for_fit=False)
    return expit(-_log_dropout_odds(params, xa, txa, Ta))


def bgnbd_conditional_expected_purchases(
    params: BGNBDParams, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """E[Y(t) | r, alpha, a, b, x, t_x, T]: expected number of transactions in the next t units of
    time for a customer with history (x, t_x, T) [BG/NBD, eq. 10]:

        E[Y(t) | ...] = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
                        / (1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))

    ``t`` may be a scalar or an array broadcast against the customers. The denominator is
    1 / P(alive), so the forecast is P(alive) times the forecast for a customer known to be alive.
    """
    xa, txa, Ta = _validate_rfm(x, t_x, T, for_fit=False)
    ta = _validate_horizon(t)
    numerator = _bgnbd_forecast_numerator(params, ta, xa, Ta)
    return numerator * expit(-_log_dropout_odds(params, xa, txa, Ta))


def bgnbd_expected_purchases(params: BGNBDParams, t: npt.ArrayLike) -> FloatArray:
    """E[X(t)]: expected number of repeat transactions in (0, t] for a new customer [BG/NBD, eq. 9]:

        E[X(t)] = (a+b-1)/(a-1) * [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]

    (eq. 10 with x = t_x = T = 0).
    """
    ta = _validate_horizon(t)
    zeros = np.zeros_like(ta)
    return _bgnbd_forecast_numerator(params, ta, zeros, zeros)


def bgnbd_simulate(params: BGNBDParams, T: npt.ArrayLike, *, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Draw (x, t_x) for customers of ages T from the BG/NBD model itself [BG/NBD, section 2].

    Each customer gets lambda ~ Gamma(r, rate alpha) and p ~ Beta(a, b). Alive, they buy as a
    Poisson process with rate lambda; right after each repeat purchase they drop out with
    probability p, so the number of repeat purchases over a lifetime is N ~ Geometric(p) on 1, 2, ...
    With K ~ Poisson(lambda T) arrivals in (0, T], x = min(N, K), and the time of the x-th of K
    uniformly scattered arrivals is T * Beta(x, K - x + 1). Used for tests and benchmarks.
    """
    Ta = _as_float_array("T", T)
    if np.any(Ta < 0):
        raise ValueError("T (time since the first purchase) must not be negative")
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=Ta.shape)
    p = rng.beta(params.a, params.b, size=Ta.shape)
    lifetime_purchases = rng.geometric(np.clip(p, 1e-12, 1.0))
    arrivals = rng.poisson(lam * Ta)
    x = np.minimum(lifetime_purchases, arrivals)
    positive = x > 0
    t_x = np.zeros_like(Ta)
    t_x[positive] = Ta[positive] * rng.beta(x[positive], arrivals[positive] - x[positive] + 1)
    # A draw of exactly 0 (possible in floating point for tiny Beta shapes) would be an invalid history.
    t_x[positive] = np.maximum(t_x[positive], np.finfo(float).tiny)
    return x.astype(np.float64), t_x


# --------------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------------


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: npt.ArrayLike, m_x: npt.ArrayLike) -> FloatArray:
    """Per-customer log-likelihood of the mean spend m_x of x >= 1 transactions [GG]:

    f(m_x | p, q, gamma, x) = Gamma(px+q) / (Gamma(px) Gamma(q))
                              * gamma^q m_x^(px-1) x^(px) / (gamma + m_x x)^(px+q)
    """
    xa, ma = _validate_spend(x, m_x, for_fit=False)
    if np.any(xa < 1) or np.any(ma <= 0):
        raise ValueError("the Gamma-Gamma likelihood needs x >= 1 and m_x > 0 for every customer")
    p, q, g = params.p, params.q, params.gamma
    px = p * xa
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(g)
        + (px - 1) * np.log(ma)
        + px * np.log(xa)
        - (px + q) * np.log(g + ma * xa)
    )


class _GammaGammaData:
    def __init__(self, x: FloatArray, m_x: FloatArray) -> None:
        self.n = len(x)
        self.x = x
        self.total_spend = x * m_x  # x m_x, the customer's total over the repeat transactions
        self.levels, self.index, counts = np.unique(x, return_inverse=True, return_counts=True)
        self.counts = counts.astype(np.float64)
        log_m = np.log(m_x)
        self.sum_x_log_m = float(_dot(x, log_m))
        self.sum_log_m = float(log_m.sum())
        self.sum_x_log_x = float(_dot(x, np.log(x)))
        self.sum_x = float(x.sum())


def _gamma_gamma_negative_ll_and_gradient(theta: FloatArray, data: _GammaGammaData) -> tuple[float, FloatArray]:
    """-(total log-likelihood) / n of [GG] and its gradient on the log-parameters:

    d lnf/dp     = x (psi(px+q) - psi(px) + ln m_x + ln x - ln(gamma + x m_x))
    d lnf/dq     = psi(px+q) - psi(q) + ln gamma - ln(gamma + x m_x)
    d lnf/dgamma = q/gamma - (px+q)/(gamma + x m_x)
    """
    p, q, g = np.exp(theta)
    levels, counts = data.levels, data.counts
    p_levels = p * levels
    log_g_total = np.log(g + data.total_spend)
    px = p * data.x
    ll = (
        _dot(counts, gammaln(p_levels + q) - gammaln(p_levels))
        - data.n * gammaln(q)
        + data.n * q * np.log(g)
        + p * data.sum_x_log_m
        - data.sum_log_m
        + p * data.sum_x_log_x
        - _dot(px + q, log_g_total)
    )
    psi_pq = digamma(p_levels + q)
    grad = np.array(
        [
            _dot(counts * levels, psi_pq - digamma(p_levels))
            + data.sum_x_log_m
            + data.sum_x_log_x
            - _dot(data.x, log_g_total),
            _dot(counts, psi_pq) - data.n * digamma(q) + data.n * np.log(g) - log_g_total.sum(),
            data.n * q / g - np.sum((px + q) / (g + data.total_spend)),
        ]
    )
    scale = -1.0 / data.n
    return scale * float(ll), scale * grad * np.array([p, q, g])


def gamma_gamma_fit(x: npt.ArrayLike, m_x: npt.ArrayLike) -> GammaGammaFit:
    """Fit the Gamma-Gamma spend model by maximum likelihood [GG].

    Pass every customer; only those with x >= 1 (at least one repeat transaction) carry spend
    information and are used, as in [GG] where the CDNOW fit uses the 946 of 2,357 customers with a
    repeat purchase. ``m_x`` is the mean value of the customer's x repeat transactions. A customer
    with x >= 1 and m_x = 0 makes the likelihood zero and is refused: drop free orders or give them a
    value before fitting.
    """
    xa, ma = _validate_spend(x, m_x, for_fit=True)
    repeat = xa >= 1
    xa, ma = xa[repeat], ma[repeat]
    if len(xa) < MIN_CUSTOMERS_TO_FIT:
        raise ValueError(
            f"too few customers with a repeat transaction to fit the Gamma-Gamma model: {len(xa)} "
            f"(need at least {MIN_CUSTOMERS_TO_FIT})"
        )
    if np.any(ma <= 0):
        raise ValueError(
            f"m_x must be positive for customers with x >= 1; {int(np.sum(ma <= 0))} have a zero mean spend"
        )
    data = _GammaGammaData(xa, ma)
    mean_spend = float(np.mean(ma))
    starts = [np.log(np.array([p0, q0, mean_spend * (q0 - 1) / p0])) for p0, q0 in ((1.0, 2.0), (5.0, 3.0), (0.5, 5.0))]
    result, clean, at_bound = _minimise_on_log_scale(_gamma_gamma_negative_ll_and_gradient, data, starts)
    p, q, g = (float(v) for v in np.exp(result.x))
    message = str(result.message)
    if at_bound:
        message = f"a parameter reached its bound (the likelihood has no interior maximum): {message}"
    return GammaGammaFit(
        params=GammaGammaParams(p=p, q=q, gamma=g),
        log_likelihood=float(-result.fun * data.n),
        converged=clean,
        n_customers=data.n,
        iterations=int(result.nit),
        message=message,
    )


def gamma_gamma_conditional_expected_spend(
    params: GammaGammaParams, x: npt.ArrayLike, m_x: npt.ArrayLike
) -> FloatArray:
    """E(M | p, q, gamma, m_x, x): expected spend per future transaction [GG, eq. 5]:

        E(M | ...) = p (gamma + x m_x) / (p x + q - 1)
                   = (q-1)/(px+q-1) * p gamma/(q-1)  +  px/(px+q-1) * m_x

    a weighted mean of the population mean and the customer's own mean, the weight on the customer's
    own mean growing with x. For x = 0 it is the population mean p gamma / (q - 1), whatever m_x is.
    Requires q > 1 (otherwise the population mean spend is infinite).
    """
    if params.q <= 1:
        raise ValueError(
            f"Gamma-Gamma q = {params.q:.4g} <= 1: the mean spend per transaction is infinite, "
            "so expected spend is undefined (the fit is not usable for CLV)"
        )
    xa, ma = _validate_spend(x, m_x, for_fit=False)
    return params.p * (params.gamma + xa * ma) / (params.p * xa + params.q - 1)


def gamma_gamma_simulate(params: GammaGammaParams, x: npt.ArrayLike, *, rng: np.random.Generator) -> FloatArray:
    """Draw m_x, the mean of x transaction values, from the Gamma-Gamma model (0 where x = 0).

    nu ~ Gamma(q, rate gamma) per customer; each transaction z ~ Gamma(p, rate nu), so the sum of x of
    them is Gamma(px, rate nu) and m_x is that sum over x.
    """
    xa = _as_float_array("x", x)
    nu = rng.gamma(params.q, 1.0 / params.gamma, size=xa.shape)
    positive = xa > 0
    m_x = np.zeros_like(xa)
    m_x[positive] = rng.gamma(params.p * xa[positive], 1.0 / nu[positive]) / xa[positive]
    return m_x


# --------------------------------------------------------------------------------------------------
# CLV
# --------------------------------------------------------------------------------------------------


def predicted_clv(
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    m_x: npt.ArrayLike,
    *,
    months: int,
    time_unit: TimeUnit,
    annual_discount_rate: float = 0.0,
) -> FloatArray:
    """Predicted revenue per customer over the next ``months`` months [RFM-CLV, section "CLV"]:

        CLV = E(M | x, m_x) * sum_{k=1..months} (E[Y(t_k) | x, t_x, T] - E[Y(t_{k-1}) | x, t_x, T]) / (1+d)^k

    where t_k is the end of month k in model time (k * 365.2425/12 days, divided by 7 for weeks),
    E[Y(t)|...] is [BG/NBD, eq. 10] and E(M|...) is [GG, eq. 5]. Each month's expected purchases are
    taken as received at the end of that month and discounted with the monthly rate equivalent to the
    annual rate, d = (1 + annual_discount_rate)^(1/12) - 1. With a rate of 0 the sum telescopes to
    E[Y(t_months)] and CLV is expected purchases times expected spend.

    The result is in the currency of m_x and is revenue, not margin: multiply by a margin to get
    profit. It counts future *repeat* transactions only (the customer's history is in x, t_x, T).
    """
    if time_unit not in DAYS_PER_UNIT:
        raise ValueError(f"time_unit must be one of {sorted(DAYS_PER_UNIT)}, got {time_unit!r}")
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 1:
        raise ValueError(f"months must be a whole number of months, at least 1, got {months!r}")
    if not np.isfinite(annual_discount_rate) or annual_discount_rate < 0:
        raise ValueError(f"annual_discount_rate must be a non-negative number, got {annual_discount_rate!r}")
    xa, txa, Ta = _validate_rfm(x, t_x, T, for_fit=False)
    spend = gamma_gamma_conditional_expected_spend(gamma_gamma, xa, m_x)
    month_length = DAYS_PER_MONTH / DAYS_PER_UNIT[time_unit]
    if annual_discount_rate == 0:
        purchases = bgnbd_conditional_expected_purchases(bgnbd, months * month_length, xa, txa, Ta)
        return spend * purchases
    monthly_rate = (1.0 + annual_discount_rate) ** (1.0 / 12) - 1.0
    alive = expit(-_log_dropout_odds(bgnbd, xa, txa, Ta))
    discounted = np.zeros(np.broadcast(xa, txa, Ta).shape)
    previous = np.zeros_like(discounted)
    for k in range(1, months + 1):
        cumulative = _bgnbd_forecast_numerator(bgnbd, np.float64(k * month_length), xa, Ta)
        discounted += (cumulative - previous) / (1.0 + monthly_rate) ** k
        previous = cumulative
    return spend * alive * discounted


# --------------------------------------------------------------------------------------------------
# Building (x, t_x, T, m_x) from purchases
# --------------------------------------------------------------------------------------------------


def _as_days(name: str, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.dtype == object:
        for value in array.flat:
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                raise ValueError(
                    f"{name} must be calendar dates or naive datetimes in the business time zone, got an "
                    "aware datetime; convert first, e.g. value.astimezone(zone).date()"
                )
    try:
        days = array.astype("datetime64[D]")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be dates (datetime.date, numpy datetime64 or ISO strings): {exc}") from exc
    if np.any(np.isnat(days)):
        raise ValueError(f"{name} contains missing dates")
    return days.astype(np.int64)


def rfm_summary(
    customer_ids: npt.ArrayLike,
    purchase_dates: npt.ArrayLike,
    amounts: npt.ArrayLike | None = None,
    *,
    observation_end: dt.date | np.datetime64 | str,
    time_unit: TimeUnit = "weeks",
) -> RFMSummary:
    """Build the per-customer (x, t_x, T, m_x) the models take from a list of purchases.

    One element of the three input arrays is one purchase. The definitions, as in [BG/NBD] and [GG]
    (and as used to build the published CDNOW summaries, which this function reproduces exactly):

    * A transaction is a customer's calendar *day* with purchases: several purchases on the same
      date are one transaction whose value is their sum. Dates are truncated to the day (pass local
      dates; aware datetimes are refused).
    * Only purchases on or before ``observation_end`` count (later ones are ignored, which is how a
      calibration summary is made); customers with none are left out.
    * x = number of transaction days after the first one (repeat transactions).
    * t_x = (last transaction day - first transaction day) in ``time_unit`` (0 when x = 0).
    * T = (observation_end - first transaction day) in ``time_unit``.
    * m_x = mean value of the x repeat transactions, i.e. the first transaction's value is left
      out; 0 when x = 0. (This is the definition that reproduces the published Gamma-Gamma CDNOW
      estimates.) Amounts must not be negative: refunded purchases are removed by the caller
      beforehand, not entered as negative rows.

    ``time_unit`` only changes the scale of t_x and T ("weeks" = days / 7); transactions are always
    counted by day. Arrays in the result are sorted by customer id.
    """
    if time_unit not in DAYS_PER_UNIT:
        raise ValueError(f"time_unit must be one of {sorted(DAYS_PER_UNIT)}, got {time_unit!r}")
    ids = np.asarray(customer_ids)
    if ids.ndim != 1:
        raise ValueError("customer_ids must be a one-dimensional array (one element per purchase)")
    days = _as_days("purchase_dates", purchase_dates)
    if days.shape != ids.shape:
        raise ValueError(f"purchase_dates has {days.size} elements but customer_ids has {ids.size}")
    end_day = int(_as_days("observation_end", np.asarray([observation_end]))[0])
    if amounts is not None:
        values = _as_float_array("amounts", amounts)
        if values.shape != ids.shape:
            raise ValueError(f"amounts has {values.size} elements but customer_ids has {ids.size}")
        if np.any(values < 0):
            raise ValueError("amounts must not be negative: exclude refunded purchases instead of netting them")
    else:
        values = np.zeros(ids.shape)

    keep = days <= end_day
    ids, days, values = ids[keep], days[keep], values[keep]
    customers, customer_index = np.unique(ids, return_inverse=True)
    n = len(customers)
    # One row per (customer, day): sort by customer then day and collapse equal neighbours.
    order = np.lexsort((days, customer_index))
    customer_sorted, day_sorted, value_sorted = customer_index[order], days[order], values[order]
    new_row = np.ones(len(order), dtype=bool)
    new_row[1:] = (customer_sorted[1:] != customer_sorted[:-1]) | (day_sorted[1:] != day_sorted[:-1])
    row_starts = np.flatnonzero(new_row)
    row_customer = customer_sorted[row_starts]
    row_day = day_sorted[row_starts]
    row_value = np.add.reduceat(value_sorted, row_starts) if len(row_starts) else np.zeros(0)

    first_row = np.ones(len(row_starts), dtype=bool)
    first_row[1:] = row_customer[1:] != row_customer[:-1]
    first_rows = np.flatnonzero(first_row)
    last_rows = np.append(first_rows[1:] - 1, len(row_starts) - 1) if n else np.zeros(0, dtype=np.int64)

    unit = DAYS_PER_UNIT[time_unit]
    x = (last_rows - first_rows).astype(np.float64)
    first_day = row_day[first_rows]
    t_x = (row_day[last_rows] - first_day) / unit
    T = (end_day - first_day) / unit
    m_x: FloatArray | None = None
    if amounts is not None:
        totals = np.bincount(row_customer, weights=row_value, minlength=n)
        repeat_totals = totals - row_value[first_rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            m_x = np.where(x > 0, repeat_totals / np.maximum(x, 1), 0.0)
    return RFMSummary(
        customer_ids=customers, x=x, t_x=t_x.astype(np.float64), T=T.astype(np.float64), m_x=m_x, time_unit=time_unit
    )
