"""Tests for the predictive CLV models (BG/NBD, Gamma-Gamma) in analytics.clv.

The reference numbers come from the papers and from Bruce Hardie's spreadsheets that accompany them;
the data are the CDNOW sample summarised in tests/analytics/data (see the README there).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import IntegrationWarning, quad
from scipy.optimize import approx_fprime
from scipy.special import beta

from analytics import clv

DATA = Path(__file__).parent / "data" / "cdnow_calibration_summary.csv"

# Fader, Hardie & Lee (2005), "Counting your customers the easy way", section 4 (CDNOW, in weeks).
PUBLISHED_BGNBD = clv.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_BGNBD_LOG_LIKELIHOOD = -9582.4
# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (CDNOW, 946 repeat buyers).
PUBLISHED_GAMMA_GAMMA = clv.GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


@pytest.fixture(scope="module")
def cdnow() -> dict[str, np.ndarray]:
    table = np.genfromtxt(DATA, delimiter=",", names=True)
    return {
        "customer_id": table["customer_id"],
        "x": table["x"],
        "t_x": table["t_x_days"] / 7,
        "T": table["T_days"] / 7,
        "m_x": table["m_x"],
    }


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow) -> clv.BGNBDFit:
    return clv.bgnbd_fit(cdnow["x"], cdnow["t_x"], cdnow["T"])


@pytest.fixture(scope="module")
def cdnow_gamma_gamma(cdnow) -> clv.GammaGammaFit:
    return clv.gamma_gamma_fit(cdnow["x"], cdnow["m_x"])


def forecast_by_quadrature(params: clv.BGNBDParams, t: float, x: int, t_x: float, T: float) -> float:
    """E[Y(t) | x, t_x, T] computed without the hypergeometric function, as an independent check.

    Integrating lambda out of the alive branch of the likelihood times E[Y(t) | lambda, p, alive] =
    (1 - exp(-lambda p t)) / p (as in the derivation of BG/NBD eq. 9) leaves a one-dimensional integral over p:

        E = int_0^1 [1 - ((alpha+T)/(alpha+T+pt))^(r+x)] / p * p^(a-1) (1-p)^(b+x-1) dp
            / (B(a, b+x) + [x > 0] B(a+1, b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))

    which QUADPACK's algebraic-weight rule integrates to ~1e-11.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b

    def smooth_part(p: float) -> float:
        if p == 0:
            return (r + x) * t / (alpha + T)
        return -np.expm1(-(r + x) * np.log1p(p * t / (alpha + T))) / p

    with warnings.catch_warnings():
        # QUADPACK warns when it cannot reach epsrel; its own error estimate is checked instead.
        warnings.simplefilter("ignore", IntegrationWarning)
        numerator, error = quad(
            smooth_part, 0, 1, weight="alg", wvar=(a - 1, b + x - 1), epsabs=0, epsrel=1e-11, limit=200
        )
    assert error < 1e-8 * numerator
    denominator = beta(a, b + x)
    if x > 0:
        denominator += beta(a + 1, b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return numerator / denominator


# --------------------------------------------------------------------------------------------------
# Published CDNOW results
# --------------------------------------------------------------------------------------------------


def test_bgnbd_fit_reproduces_the_published_cdnow_estimates(cdnow_bgnbd):
    params = cdnow_bgnbd.params
    assert cdnow_bgnbd.converged, cdnow_bgnbd.message
    assert cdnow_bgnbd.n_customers == 2357
    assert params.r == pytest.approx(PUBLISHED_BGNBD.r, abs=1e-3)
    assert params.alpha == pytest.approx(PUBLISHED_BGNBD.alpha, abs=1e-2)
    assert params.a == pytest.approx(PUBLISHED_BGNBD.a, abs=1e-3)
    assert params.b == pytest.approx(PUBLISHED_BGNBD.b, abs=1e-3)
    assert cdnow_bgnbd.log_likelihood == pytest.approx(PUBLISHED_BGNBD_LOG_LIKELIHOOD, abs=0.05)


def test_bgnbd_fit_rounds_to_the_published_three_decimals(cdnow_bgnbd):
    params = cdnow_bgnbd.params
    assert [round(params.r, 3), round(params.alpha, 3), round(params.a, 3), round(params.b, 3)] == [
        0.243,
        4.414,
        0.793,
        2.426,
    ]


def test_gamma_gamma_fit_reproduces_the_published_cdnow_estimates(cdnow_gamma_gamma):
    params = cdnow_gamma_gamma.params
    assert cdnow_gamma_gamma.converged, cdnow_gamma_gamma.message
    assert cdnow_gamma_gamma.n_customers == 946
    assert params.p == pytest.approx(PUBLISHED_GAMMA_GAMMA.p, abs=0.01)
    assert params.q == pytest.approx(PUBLISHED_GAMMA_GAMMA.q, abs=0.01)
    assert params.gamma == pytest.approx(PUBLISHED_GAMMA_GAMMA.gamma, abs=0.05)


def test_conditional_expectation_matches_hardies_bgnbd_spreadsheet():
    # Customer 1 of CDNOW (x=2, t_x=30.43, T=38.86): 1.226 expected purchases in the next 39 weeks,
    # with the published parameters, in the spreadsheet that accompanies the paper.
    expected = clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, 39, 2, 30.43, 38.86)
    assert float(expected) == pytest.approx(1.226, abs=5e-4)


def test_unconditional_expectation_matches_hardies_bgnbd_spreadsheet(cdnow_bgnbd):
    # E[X(t)] (eq. 9) for the fitted CDNOW model, from the same spreadsheet.
    times = [0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0]
    spreadsheet = [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576]
    np.testing.assert_allclose(clv.bgnbd_expected_purchases(cdnow_bgnbd.params, times), spreadsheet, atol=5e-4)


def test_conditional_spend_matches_hardies_gamma_gamma_spreadsheet(cdnow, cdnow_gamma_gamma):
    # E(M | x, m_x) for the first ten CDNOW customers, from the spreadsheet of the 2013 note.
    spreadsheet = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    spend = clv.gamma_gamma_conditional_expected_spend(cdnow_gamma_gamma.params, cdnow["x"][:10], cdnow["m_x"][:10])
    np.testing.assert_allclose(spend, spreadsheet, atol=0.01)


def test_the_fitted_cdnow_model_accounts_for_the_calibration_purchases(cdnow, cdnow_bgnbd):
    # 2,457 repeat transactions were made in calibration; summing E[X(T)] (eq. 9) over the customers'
    # ages gives the model's count, which a correct fit matches closely (the paper's Figure 2).
    model = clv.bgnbd_expected_purchases(cdnow_bgnbd.params, cdnow["T"]).sum()
    assert cdnow["x"].sum() == 2457
    assert model == pytest.approx(2457, rel=0.02)


def test_conditional_forecasts_add_up_to_the_unconditional_forecast(cdnow, cdnow_bgnbd):
    # Averaged over customers, E[Y(t) | history] (eq. 10) must agree with E[X(T + t)] - E[X(T)] (eq. 9)
    # when the model fits the data: a gross error in either formula would break this.
    params = cdnow_bgnbd.params
    conditional = clv.bgnbd_conditional_expected_purchases(params, 39, cdnow["x"], cdnow["t_x"], cdnow["T"]).sum()
    unconditional = (
        clv.bgnbd_expected_purchases(params, cdnow["T"] + 39) - clv.bgnbd_expected_purchases(params, cdnow["T"])
    ).sum()
    assert conditional == pytest.approx(unconditional, rel=0.02)


# --------------------------------------------------------------------------------------------------
# Numerics of eq. 10 (hypergeometric function) against an independent quadrature
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "t", "x", "t_x", "T"),
    [
        (PUBLISHED_BGNBD, 39.0, 2, 30.43, 38.86),
        (PUBLISHED_BGNBD, 39.0, 0, 0.0, 38.86),
        (PUBLISHED_BGNBD, 1e4, 0, 0.0, 1.0),
        (PUBLISHED_BGNBD, 52.0, 500, 38.0, 38.86),
        (PUBLISHED_BGNBD, 1e6, 500, 38.0, 38.86),
        (clv.BGNBDParams(r=5.0, alpha=1.0, a=3.0, b=0.2), 520.0, 300, 360.0, 365.0),
        (clv.BGNBDParams(r=0.3, alpha=4.414, a=0.4, b=0.3), 1e5, 0, 0.0, 38.86),
        (clv.BGNBDParams(r=2.0, alpha=30.0, a=1.5, b=1.5), 365.0, 0, 0.0, 0.0),
        (clv.BGNBDParams(r=0.05, alpha=200.0, a=12.0, b=40.0), 3000.0, 40, 900.0, 1000.0),
        # Removable singularities: a = 1, and a + b - 1 = 0 with x = 0.
        (clv.BGNBDParams(r=0.243, alpha=4.414, a=1.0, b=2.426), 39.0, 2, 30.43, 38.86),
        (clv.BGNBDParams(r=0.243, alpha=4.414, a=1.000003, b=2.426), 39.0, 2, 30.43, 38.86),
        (clv.BGNBDParams(r=0.3, alpha=4.414, a=0.4, b=0.6), 39.0, 0, 0.0, 38.86),
    ],
)
def test_conditional_expectation_agrees_with_quadrature(params, t, x, t_x, T):
    expected = forecast_by_quadrature(params, t, x, t_x, T)
    assert float(clv.bgnbd_conditional_expected_purchases(params, t, x, t_x, T)) == pytest.approx(expected, rel=1e-8)


def test_conditional_expectation_is_finite_for_heavy_buyers_who_went_quiet():
    x = np.array([50.0, 500.0, 2000.0, 20000.0])
    forecast = clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, 52, x, 10.0, 200.0)
    assert np.all(np.isfinite(forecast))
    assert np.all(forecast >= 0)
    assert forecast[-1] < 1e-12  # certainly gone, not NaN
    alive = clv.bgnbd_probability_alive(PUBLISHED_BGNBD, x, 10.0, 200.0)
    assert np.all(np.isfinite(alive)) and alive[-1] < 1e-12


def test_conditional_expectation_of_a_brand_new_customer_is_the_unconditional_one():
    t = np.array([0.5, 4.0, 39.0, 520.0])
    np.testing.assert_allclose(
        clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, t, 0, 0, 0),
        clv.bgnbd_expected_purchases(PUBLISHED_BGNBD, t),
        rtol=1e-12,
    )


def test_forecast_over_no_time_is_zero():
    assert float(clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, 0, 3, 20, 30)) == 0.0


def test_forecast_grows_with_the_horizon():
    t = np.linspace(0, 520, 60)
    forecast = clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, t, 4, 30, 38.86)
    assert np.all(np.diff(forecast) > 0)


# --------------------------------------------------------------------------------------------------
# Properties of P(alive) and of the forecasts
# --------------------------------------------------------------------------------------------------


def test_a_more_recent_last_purchase_means_more_likely_alive():
    t_x = np.linspace(1, 38.86, 40)
    for x in (1, 2, 5, 20):
        alive = clv.bgnbd_probability_alive(PUBLISHED_BGNBD, x, t_x, 38.86)
        assert np.all(np.diff(alive) > 0)
        assert np.all((alive > 0) & (alive <= 1))


def test_a_longer_silence_means_less_likely_alive():
    T = np.linspace(20, 200, 40)
    alive = clv.bgnbd_probability_alive(PUBLISHED_BGNBD, 3, 20, T)
    assert np.all(np.diff(alive) < 0)


def test_customers_without_repeat_purchases_are_alive_in_the_model():
    # BG/NBD customers can only drop out right after a repeat purchase.
    alive = clv.bgnbd_probability_alive(PUBLISHED_BGNBD, [0, 0], [0, 0], [1, 500])
    np.testing.assert_array_equal(alive, [1.0, 1.0])


def test_a_customer_who_bought_at_the_last_moment_is_forecast_more_than_one_gone_quiet():
    recent = clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, 39, 5, 38.0, 38.86)
    quiet = clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, 39, 5, 5.0, 38.86)
    assert recent > quiet


def test_zero_repeat_customers_get_a_small_positive_forecast(cdnow, cdnow_bgnbd):
    params = cdnow_bgnbd.params
    T = np.array([1.0, 10.0, 38.86, 100.0])
    forecast = clv.bgnbd_conditional_expected_purchases(params, 39, 0, 0, T)
    assert np.all(forecast > 0)
    assert np.all(np.diff(forecast) < 0)  # the longer nothing happens, the lower the rate we believe in
    repeaters = cdnow["x"] > 0
    mean_repeater_forecast = clv.bgnbd_conditional_expected_purchases(
        params, 39, cdnow["x"][repeaters], cdnow["t_x"][repeaters], cdnow["T"][repeaters]
    ).mean()
    assert forecast[2] < 0.5 * mean_repeater_forecast


def test_more_purchases_in_the_same_time_forecast_more_purchases():
    x = np.arange(1, 30)
    forecast = clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, 39, x, 38.0, 38.86)
    assert np.all(np.diff(forecast) > 0)


def test_conditional_spend_shrinks_towards_the_population_mean(cdnow_gamma_gamma):
    params = cdnow_gamma_gamma.params
    population = params.population_mean_spend
    spend = clv.gamma_gamma_conditional_expected_spend(params, [0, 1, 5, 50, 5000], 100.0)
    assert spend[0] == pytest.approx(population)
    assert np.all(np.diff(spend) > 0)
    assert population < spend[1] < spend[-1] < 100.0
    assert spend[-1] == pytest.approx(100.0, rel=1e-3)


# --------------------------------------------------------------------------------------------------
# Likelihood and optimiser
# --------------------------------------------------------------------------------------------------


def test_bgnbd_objective_is_the_summed_log_likelihood_and_its_gradient_is_right(cdnow):
    data = clv._BGNBDData(cdnow["x"], cdnow["t_x"], cdnow["T"])
    theta = np.log([0.3, 5.0, 0.7, 2.0])
    value, gradient = clv._bgnbd_negative_ll_and_gradient(theta, data)
    per_customer = clv.bgnbd_log_likelihood(clv.BGNBDParams(*np.exp(theta)), cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert -value * len(cdnow["x"]) == pytest.approx(per_customer.sum(), rel=1e-12)
    numeric = approx_fprime(theta, lambda th: clv._bgnbd_negative_ll_and_gradient(th, data)[0], 1e-7)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-8)


def test_gamma_gamma_objective_is_the_summed_log_likelihood_and_its_gradient_is_right(cdnow):
    repeat = cdnow["x"] > 0
    x, m_x = cdnow["x"][repeat], cdnow["m_x"][repeat]
    data = clv._GammaGammaData(x, m_x)
    theta = np.log([5.0, 3.0, 10.0])
    value, gradient = clv._gamma_gamma_negative_ll_and_gradient(theta, data)
    per_customer = clv.gamma_gamma_log_likelihood(clv.GammaGammaParams(*np.exp(theta)), x, m_x)
    assert -value * len(x) == pytest.approx(per_customer.sum(), rel=1e-12)
    numeric = approx_fprime(theta, lambda th: clv._gamma_gamma_negative_ll_and_gradient(th, data)[0], 1e-7)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-8)


def test_bgnbd_log_likelihood_survives_long_histories():
    # Terms like (alpha + T)^-(r + x) underflow in linear space; the log-space sum must not.
    ll = clv.bgnbd_log_likelihood(PUBLISHED_BGNBD, [0, 400, 5000], [0, 900.0, 999.0], [1000.0, 1000.0, 1000.0])
    assert np.all(np.isfinite(ll))


def test_fits_recover_the_parameters_that_generated_the_data():
    rng = np.random.default_rng(7)
    truth = clv.BGNBDParams(r=0.8, alpha=6.0, a=0.7, b=3.0)
    spend_truth = clv.GammaGammaParams(p=4.0, q=5.0, gamma=30.0)
    T = rng.uniform(1, 104, 100_000)
    x, t_x = clv.bgnbd_simulate(truth, T, rng=rng)
    m_x = clv.gamma_gamma_simulate(spend_truth, x, rng=rng)

    fit = clv.bgnbd_fit(x, t_x, T)
    assert fit.converged, fit.message
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit.params, name) == pytest.approx(getattr(truth, name), rel=0.1), name

    spend_fit = clv.gamma_gamma_fit(x, m_x)
    assert spend_fit.converged, spend_fit.message
    for name in ("p", "q", "gamma"):
        assert getattr(spend_fit.params, name) == pytest.approx(getattr(spend_truth, name), rel=0.1), name


def test_simulated_customers_have_valid_histories():
    rng = np.random.default_rng(3)
    T = rng.uniform(0, 50, 10_000)
    x, t_x = clv.bgnbd_simulate(PUBLISHED_BGNBD, T, rng=rng)
    clv._validate_rfm(x, t_x, T, for_fit=True)  # raises if any history is impossible


def test_fitting_in_days_gives_the_same_model_as_fitting_in_weeks(cdnow, cdnow_bgnbd):
    in_days = clv.bgnbd_fit(cdnow["x"], cdnow["t_x"] * 7, cdnow["T"] * 7)
    assert in_days.params.alpha == pytest.approx(cdnow_bgnbd.params.alpha * 7, rel=1e-4)
    assert in_days.params.r == pytest.approx(cdnow_bgnbd.params.r, rel=1e-4)
    assert in_days.params.a == pytest.approx(cdnow_bgnbd.params.a, rel=1e-4)
    assert in_days.params.b == pytest.approx(cdnow_bgnbd.params.b, rel=1e-4)


# --------------------------------------------------------------------------------------------------
# CLV
# --------------------------------------------------------------------------------------------------


def test_undiscounted_clv_is_expected_purchases_times_expected_spend(cdnow, cdnow_bgnbd, cdnow_gamma_gamma):
    x, t_x, T, m_x = cdnow["x"][:50], cdnow["t_x"][:50], cdnow["T"][:50], cdnow["m_x"][:50]
    value = clv.predicted_clv(
        cdnow_bgnbd.params, cdnow_gamma_gamma.params, x, t_x, T, m_x, months=12, time_unit="weeks"
    )
    horizon = 12 * clv.DAYS_PER_MONTH / 7
    expected = clv.bgnbd_conditional_expected_purchases(
        cdnow_bgnbd.params, horizon, x, t_x, T
    ) * clv.gamma_gamma_conditional_expected_spend(cdnow_gamma_gamma.params, x, m_x)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert np.all(value > 0)


def test_discounted_clv_discounts_each_month_at_the_monthly_equivalent_rate(cdnow_bgnbd, cdnow_gamma_gamma):
    params, spend_params = cdnow_bgnbd.params, cdnow_gamma_gamma.params
    x, t_x, T, m_x = 3.0, 30.0, 38.86, 40.0
    value = clv.predicted_clv(
        params, spend_params, x, t_x, T, m_x, months=24, time_unit="weeks", annual_discount_rate=0.12
    )
    month = clv.DAYS_PER_MONTH / 7
    cumulative = clv.bgnbd_conditional_expected_purchases(params, month * np.arange(25), x, t_x, T)
    monthly_rate = 1.12 ** (1 / 12) - 1
    by_hand = np.sum(np.diff(cumulative) / (1 + monthly_rate) ** np.arange(1, 25))
    by_hand *= clv.gamma_gamma_conditional_expected_spend(spend_params, x, m_x)
    assert float(value) == pytest.approx(float(by_hand), rel=1e-10)
    undiscounted = clv.predicted_clv(params, spend_params, x, t_x, T, m_x, months=24, time_unit="weeks")
    assert float(value) < float(undiscounted)


def test_clv_does_not_depend_on_the_time_unit_used(cdnow_bgnbd, cdnow_gamma_gamma):
    weeks = cdnow_bgnbd.params
    days = clv.BGNBDParams(r=weeks.r, alpha=weeks.alpha * 7, a=weeks.a, b=weeks.b)
    x, t_x, T, m_x = (
        np.array([0.0, 2.0, 7.0]),
        np.array([0.0, 30.43, 12.0]),
        np.full(3, 38.86),
        np.array([0.0, 22.3, 50]),
    )
    in_weeks = clv.predicted_clv(
        weeks, cdnow_gamma_gamma.params, x, t_x, T, m_x, months=6, time_unit="weeks", annual_discount_rate=0.1
    )
    in_days = clv.predicted_clv(
        days, cdnow_gamma_gamma.params, x, t_x * 7, T * 7, m_x, months=6, time_unit="days", annual_discount_rate=0.1
    )
    np.testing.assert_allclose(in_weeks, in_days, rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"months": 0, "time_unit": "weeks"}, "months"),
        ({"months": 1.5, "time_unit": "weeks"}, "months"),
        ({"months": 12, "time_unit": "fortnights"}, "time_unit"),
        ({"months": 12, "time_unit": "weeks", "annual_discount_rate": -0.1}, "annual_discount_rate"),
    ],
)
def test_clv_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        clv.predicted_clv(PUBLISHED_BGNBD, PUBLISHED_GAMMA_GAMMA, 1, 2, 3, 10, **kwargs)


# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([-1, 0], [1, 0], [2, 2], "x .* must not be negative"),
        ([1.5, 0], [1, 0], [2, 2], "whole number"),
        ([1, 0], [-1, 0], [2, 2], "t_x .* must not be negative"),
        ([1, 0], [1, 0], [-2, 2], "T .* must not be negative"),
        ([1, 0], [3, 0], [2, 2], "t_x must not exceed T"),
        ([1, 0], [0, 0], [2, 2], "t_x must be positive when x > 0"),
        ([0, 0], [1, 0], [2, 2], "t_x must be 0 when x = 0"),
        ([1, np.nan], [1, 0], [2, 2], "NaN"),
        ([1, 0], [1, 0], [2], "same length"),
        (["a", 0], [1, 0], [2, 2], "numeric"),
    ],
)
def test_bgnbd_fit_rejects_impossible_histories(x, t_x, T, message):
    with pytest.raises(ValueError, match=message):
        clv.bgnbd_fit(x, t_x, T)


def test_bgnbd_prediction_validates_its_inputs_too():
    with pytest.raises(ValueError, match="t_x must not exceed T"):
        clv.bgnbd_probability_alive(PUBLISHED_BGNBD, 1, 5, 4)
    with pytest.raises(ValueError, match="horizon"):
        clv.bgnbd_conditional_expected_purchases(PUBLISHED_BGNBD, -1, 1, 2, 3)


def test_bgnbd_fit_refuses_too_few_customers():
    with pytest.raises(ValueError, match="too few customers"):
        clv.bgnbd_fit([1, 0, 2], [1, 0, 2], [3, 3, 3])


def test_bgnbd_fit_refuses_data_without_any_repeat_purchase():
    with pytest.raises(ValueError, match="no customer has a repeat transaction"):
        clv.bgnbd_fit(np.zeros(20), np.zeros(20), np.full(20, 10.0))


def test_gamma_gamma_fit_refuses_too_few_repeat_buyers():
    x = np.array([0] * 100 + [1] * 5)
    with pytest.raises(ValueError, match="too few customers with a repeat transaction"):
        clv.gamma_gamma_fit(x, np.where(x > 0, 10.0, 0.0))


def test_gamma_gamma_fit_refuses_repeat_buyers_who_spent_nothing():
    x = np.ones(20)
    m_x = np.full(20, 10.0)
    m_x[3] = 0
    with pytest.raises(ValueError, match="m_x must be positive"):
        clv.gamma_gamma_fit(x, m_x)


def test_gamma_gamma_rejects_negative_spend():
    with pytest.raises(ValueError, match="exclude refunds"):
        clv.gamma_gamma_fit(np.ones(20), np.full(20, -1.0))


def test_conditional_spend_needs_a_finite_population_mean():
    with pytest.raises(ValueError, match="q = 0.9"):
        clv.gamma_gamma_conditional_expected_spend(clv.GammaGammaParams(p=2, q=0.9, gamma=10), 1, 10)


def test_parameters_must_be_positive():
    with pytest.raises(ValueError, match="alpha must be a positive"):
        clv.BGNBDParams(r=0.2, alpha=0, a=1, b=1)
    with pytest.raises(ValueError, match="gamma must be a positive"):
        clv.GammaGammaParams(p=1, q=2, gamma=float("nan"))


# --------------------------------------------------------------------------------------------------
# rfm_summary
# --------------------------------------------------------------------------------------------------

# Raw CDNOW_sample.txt lines (sample id, date, CDs, dollars) of five customers: 26 and 46 bought
# twice on one day (1997-01-13; 1997-08-28), 1 and 46 bought again after the calibration period.
CDNOW_RAW = """
0001 19970101 2 29.33
0001 19970118 2 29.73
0001 19970802 1 14.96
0001 19971212 2 26.48
0002 19970101 3 63.34
0002 19970113 1 11.77
0003 19970101 1 6.79
0026 19970102 1 3.99
0026 19970113 10 166.89
0026 19970113 4 60.25
0046 19970103 3 40.70
0046 19970114 1 14.96
0046 19970121 2 43.13
0046 19970127 1 14.96
0046 19970204 2 39.33
0046 19970411 2 29.92
0046 19970627 2 37.93
0046 19970710 2 26.73
0046 19970714 2 29.58
0046 19970729 1 14.96
0046 19970731 1 21.97
0046 19970828 2 29.73
0046 19970828 2 27.74
0046 19970901 2 23.54
0046 19971013 2 32.48
0046 19971028 2 24.48
0046 19980110 2 26.48
"""


def test_rfm_summary_reproduces_the_committed_cdnow_rows(cdnow):
    rows = [line.split() for line in CDNOW_RAW.strip().splitlines()]
    ids = np.array([int(r[0]) for r in rows])
    dates = [dt.date(int(r[1][:4]), int(r[1][4:6]), int(r[1][6:])) for r in rows]
    amounts = np.array([float(r[3]) for r in rows])
    summary = clv.rfm_summary(ids, dates, amounts, observation_end=dt.date(1997, 9, 30), time_unit="weeks")

    np.testing.assert_array_equal(summary.customer_ids, [1, 2, 3, 26, 46])
    committed = np.searchsorted(cdnow["customer_id"], summary.customer_ids)
    np.testing.assert_array_equal(summary.x, cdnow["x"][committed])
    np.testing.assert_allclose(summary.t_x, cdnow["t_x"][committed], rtol=1e-12)
    np.testing.assert_allclose(summary.T, cdnow["T"][committed], rtol=1e-12)
    np.testing.assert_allclose(summary.m_x, cdnow["m_x"][committed], atol=1e-6)
    # Customer 1 as printed in the literature: x=2, t_x=30.43, T=38.86, mean repeat spend 22.35.
    assert (summary.x[0], round(summary.t_x[0], 2), round(summary.T[0], 2)) == (2, 30.43, 38.86)
    assert summary.m_x[0] == pytest.approx((29.73 + 14.96) / 2)


def test_rfm_summary_counts_purchase_days_not_purchases():
    summary = clv.rfm_summary(
        ["a", "a", "a", "a"],
        ["2024-01-01", "2024-01-01", "2024-01-08", "2024-01-08"],
        [10.0, 5.0, 20.0, 30.0],
        observation_end="2024-01-15",
        time_unit="days",
    )
    assert summary.x.tolist() == [1.0]
    assert summary.t_x.tolist() == [7.0]
    assert summary.T.tolist() == [14.0]
    assert summary.m_x.tolist() == [50.0]  # the repeat day's two purchases, summed; the first day left out


def test_rfm_summary_ignores_purchases_after_the_observation_end():
    summary = clv.rfm_summary(
        [1, 1, 2],
        np.array(["2024-01-01", "2024-03-01", "2024-03-01"], dtype="datetime64[D]"),
        [10.0, 10.0, 10.0],
        observation_end=np.datetime64("2024-01-31"),
    )
    assert summary.customer_ids.tolist() == [1]  # customer 2 had not bought yet
    assert summary.x.tolist() == [0.0]
    assert summary.m_x.tolist() == [0.0]
    assert summary.T.tolist() == [30 / 7]


def test_rfm_summary_counts_a_purchase_on_the_observation_end():
    summary = clv.rfm_summary([1, 1], ["2024-01-01", "2024-01-31"], observation_end="2024-01-31", time_unit="days")
    assert (summary.x[0], summary.t_x[0], summary.T[0]) == (1.0, 30.0, 30.0)
    assert summary.m_x is None


def test_rfm_summary_output_feeds_the_models_without_complaint():
    rng = np.random.default_rng(11)
    n = 5000
    ids = rng.integers(0, 800, n)
    dates = np.datetime64("2024-01-01") + rng.integers(0, 365, n).astype("timedelta64[D]")
    summary = clv.rfm_summary(ids, dates, rng.uniform(1, 100, n), observation_end="2024-12-31")
    fit = clv.bgnbd_fit(summary.x, summary.t_x, summary.T)
    assert fit.n_customers == len(summary.customer_ids)
    clv.gamma_gamma_fit(summary.x, summary.m_x)


def test_rfm_summary_refuses_negative_amounts():
    with pytest.raises(ValueError, match="exclude refunded purchases"):
        clv.rfm_summary([1, 1], ["2024-01-01", "2024-01-02"], [10.0, -10.0], observation_end="2024-02-01")


def test_rfm_summary_refuses_aware_datetimes():
    aware = dt.datetime(2024, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with pytest.raises(ValueError, match="aware datetime"):
        clv.rfm_summary([1], [aware], observation_end="2024-02-01")


def test_rfm_summary_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="purchase_dates has 1 elements"):
        clv.rfm_summary([1, 2], ["2024-01-01"], observation_end="2024-02-01")
    with pytest.raises(ValueError, match="time_unit"):
        clv.rfm_summary([1], ["2024-01-01"], observation_end="2024-02-01", time_unit="months")
    with pytest.raises(ValueError, match="missing dates"):
        clv.rfm_summary([1], [None], observation_end="2024-02-01")
