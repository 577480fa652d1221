"""Bound functions against naive loop implementations, analytic critics and extreme scores."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from estimators.neural import bounds
from estimators.samplers import GaussianSampler


def naive(scores: np.ndarray, name: str, **kw) -> float:
    """Each bound written out with explicit loops over pairs, in float64."""
    k = scores.shape[0]
    joint = np.mean([scores[i, i] for i in range(k)])
    off = [scores[i, j] for i in range(k) for j in range(k) if i != j]
    if name == "dv":
        return joint - (logsumexp(off) - math.log(len(off)))
    if name == "nwj":
        return joint - np.mean([math.exp(s - 1) for s in off])
    if name == "tuba":
        b = kw["b"]
        pos = np.mean([scores[i, i] - b[i] for i in range(k)])
        neg = np.mean([math.exp(scores[i, j] - b[j]) for i in range(k) for j in range(k) if i != j])
        return 1 + pos - neg
    if name == "infonce":
        return math.log(k) + np.mean([scores[i, i] - logsumexp(scores[i]) for i in range(k)])
    if name == "js_read":
        return 1 + joint - np.mean([math.exp(s) for s in off])
    if name == "smile":
        clipped = [min(max(s, -kw["clip"]), kw["clip"]) for s in off]
        return joint - (logsumexp(clipped) - math.log(len(off)))
    if name == "js_objective":
        softplus = lambda t: math.log1p(math.exp(-abs(t))) + max(t, 0.0)  # noqa: E731
        return -np.mean([softplus(-scores[i, i]) for i in range(k)]) - np.mean([softplus(s) for s in off])
    if name == "interpolated":
        alpha, b = kw["alpha"], kw["b"]

        def partition(y, leave_out):  # log(alpha * mean_{x != leave_out} e^f(x, y) + (1 - alpha) e^b(y))
            m = np.mean([math.exp(scores[x, y]) for x in range(k) if x != leave_out])
            return math.log(alpha * m + (1 - alpha) * math.exp(b[y]))

        pos = np.mean([scores[i, i] - partition(i, j) for i in range(k) for j in range(k) if j != i])
        neg = np.mean(
            [math.exp(scores[j, i] - partition(i, i)) for i in range(k) for j in range(k) if j != i]
        )
        return 1 + pos - neg
    raise KeyError(name)


@pytest.fixture
def scores():
    return torch.from_numpy(np.random.default_rng(0).normal(scale=2.0, size=(9, 9)))


def test_every_bound_matches_its_naive_reference(scores):
    s = scores.numpy()
    b = np.random.default_rng(1).normal(size=9)
    pairs = [
        (bounds.dv_bound(scores), naive(s, "dv")),
        (bounds.nwj_bound(scores), naive(s, "nwj")),
        (bounds.tuba_bound(scores, torch.from_numpy(b)), naive(s, "tuba", b=b)),
        (bounds.infonce_bound(scores), naive(s, "infonce")),
        (bounds.js_bound(scores), naive(s, "js_read")),
        (bounds.smile_bound(scores, clip=1.5), naive(s, "smile", clip=1.5)),
        (bounds.js_divergence_objective(scores), naive(s, "js_objective")),
        (bounds.mine_bound(scores, None)[0], naive(s, "dv")),
    ]
    for alpha in (0.0, 0.3, 1.0):
        interpolated = bounds.interpolated_bound(scores, torch.from_numpy(b), alpha)
        pairs.append((interpolated, naive(s, "interpolated", alpha=alpha, b=b)))
    for value, reference in pairs:
        assert value.item() == pytest.approx(reference, abs=1e-10)


def test_interpolated_bound_at_alpha_0_with_baseline_1_is_nwj(scores):
    assert bounds.interpolated_bound(scores, 1.0, 0.0).item() == pytest.approx(
        bounds.nwj_bound(scores).item()
    )
    with pytest.raises(ValueError, match="alpha"):
        bounds.interpolated_bound(scores, 0.0, 1.5)


def test_leave_one_out_stays_exact_when_one_score_dominates():
    rows = torch.tensor([[800.0, 0.0, -3.0], [1.0, 2.0, 3.0], [-900.0, 5.0, 5.0]], dtype=torch.float64)
    out = bounds._leave_one_out_log_mean(rows)
    for i in range(3):
        for j in range(3):
            others = [rows[i, k].item() for k in range(3) if k != j]
            assert out[i, j].item() == pytest.approx(logsumexp(others) - math.log(2), abs=1e-9)


def test_large_scores_do_not_overflow():
    scores = torch.from_numpy(np.random.default_rng(2).normal(scale=1000.0, size=(16, 16)))
    s = scores.numpy()
    for value, reference in [
        (bounds.dv_bound(scores), naive(s, "dv")),
        (bounds.infonce_bound(scores), naive(s, "infonce")),
        (bounds.smile_bound(scores, clip=5.0), naive(s, "smile", clip=5.0)),
        (bounds.js_divergence_objective(scores), naive(s, "js_objective")),
        (bounds.interpolated_bound(scores, 0.0, 0.5), None),
    ]:
        assert torch.isfinite(value) or value == float("-inf")
        if reference is not None:
            assert value.item() == pytest.approx(reference, rel=1e-9)
    # infonce never exceeds log K, whatever the critic
    assert bounds.infonce_bound(scores).item() <= math.log(16) + 1e-12


def test_trained_with_one_objective_read_with_another(scores):
    for read in (bounds.js_bound, lambda s: bounds.smile_bound(s, 2.0)):
        first = scores.clone().requires_grad_(True)
        read(first).backward()
        second = scores.clone().requires_grad_(True)
        bounds.js_divergence_objective(second).backward()
        assert torch.allclose(first.grad, second.grad)


def test_mine_gradient_divides_by_the_moving_average(scores):
    running = torch.tensor(0.7, dtype=torch.float64)
    leaf = scores.clone().requires_grad_(True)
    value, updated = bounds.mine_bound(leaf, running, momentum=0.9)
    value.backward()
    # reference: d/ds [mean(diag)] - d/ds [E_q e^f] / moving average
    k = scores.shape[0]
    mask = ~torch.eye(k, dtype=torch.bool)
    mean_exp = torch.exp(scores[mask]).mean()
    moving = 0.9 * math.exp(0.7) + 0.1 * mean_exp
    expected = torch.eye(k, dtype=torch.float64) / k - mask * torch.exp(scores) / (k * (k - 1)) / moving
    assert torch.allclose(leaf.grad, expected)
    assert updated.item() == pytest.approx(math.log(moving))


def test_optimal_critics_recover_the_true_mutual_information():
    """With the true log density ratio as critic, DV, NWJ (at 1 + log ratio) and JS are unbiased."""
    rho, k = 0.8, 1500
    sampler = GaussianSampler.sparse(1, 1, rho)
    x, y = (torch.from_numpy(a[:, 0]) for a in sampler.sample(k, rng=3))
    log_ratio = (
        -0.5 * math.log(1 - rho**2)
        - (x[:, None] ** 2 + y[None, :] ** 2 - 2 * rho * x[:, None] * y[None, :]) / (2 * (1 - rho**2))
        + (x[:, None] ** 2 + y[None, :] ** 2) / 2
    )
    truth = sampler.mutual_information()  # 0.51 nats
    # sampling error of the diagonal mean at K = 1500 is about 0.03 nats; 0.1 leaves room for the
    # exponential-average terms, whose error is larger
    assert bounds.dv_bound(log_ratio).item() == pytest.approx(truth, abs=0.1)
    assert bounds.nwj_bound(log_ratio + 1).item() == pytest.approx(truth, abs=0.1)
    assert bounds.js_bound(log_ratio).item() == pytest.approx(truth, abs=0.1)
    assert bounds.infonce_bound(log_ratio).item() == pytest.approx(truth, abs=0.1)  # I << log K here


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="square"):
        bounds.dv_bound(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="K >= 2"):
        bounds.infonce_bound(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="batch_size"):
        bounds.check_batch_size(1)
