"""safe_svd, procrustes, ortho_det: gradients (gradcheck, degenerate inputs), optimality, dtypes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from niso_geom.niso.linalg import ortho_det, procrustes, safe_inverse, safe_svd

F64 = torch.float64




def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _rotation(k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(_randn(k, k, seed=seed))
    if torch.linalg.det(q) < 0:
        q = q.clone()
        q[:, 0] = -q[:, 0]
    return q


def _gauge_invariant(A: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, ...]:
    """Functions of (U, S, Vh) that do not depend on the singular vectors' signs, yet exercise
    every term of the backward (including the m != n corrections)."""
    U, S, Vh = safe_svd(A, eps)
    w = torch.arange(1, S.shape[-1] + 1, dtype=A.dtype)
    return S, (U * w) @ U.mT, (Vh.mT * w) @ Vh, (U * w.flip(0)) @ Vh


SHAPES = [(5, 5), (7, 4), (4, 7), (2, 6, 3)]


def test_safe_inverse() -> None:
    x = torch.tensor([0.0, 1.0, -2.0, 1e-5], dtype=F64)
    y = safe_inverse(x, 1e-8)
    assert y[0] == 0
    assert torch.allclose(y[1:3], 1 / x[1:3], rtol=1e-7)
    assert y[3].abs() < 1 / (2 * math.sqrt(1e-8)) + 1e-6  # bounded


@pytest.mark.parametrize("shape", SHAPES)
def test_safe_svd_forward_is_torch_svd(shape: tuple[int, ...]) -> None:
    A = _randn(*shape, seed=1)
    U, S, Vh = safe_svd(A)
    U0, S0, Vh0 = torch.linalg.svd(A, full_matrices=False)
    assert torch.equal(U, U0) and torch.equal(S, S0) and torch.equal(Vh, Vh0)


@pytest.mark.parametrize("shape", SHAPES)
def test_safe_svd_gradcheck(shape: tuple[int, ...]) -> None:
    A = _randn(*shape, seed=2).requires_grad_()
    assert gradcheck(_gauge_invariant, (A,))


@pytest.mark.parametrize("shape", [(6, 6), (8, 5), (5, 8), (3, 7, 4)])
def test_safe_svd_backward_matches_torch(shape: tuple[int, ...]) -> None:
    """Distinct singular values: torch's SVD backward is well defined; eps=0 matches it to rounding,
    the default eps to O(eps / gap²)."""
    A = _randn(*shape, seed=3).requires_grad_()
    outs = torch.linalg.svd(A, full_matrices=False)
    weights = [_randn(*o.shape, seed=10 + i) for i, o in enumerate(outs)]

    def grad(fn):
        loss = sum((w * o).sum() for w, o in zip(weights, fn(A)))
        return torch.autograd.grad(loss, A)[0]

    g_torch = grad(lambda X: torch.linalg.svd(X, full_matrices=False))
    g_exact = grad(lambda X: safe_svd(X, eps=0.0))
    g_safe = grad(safe_svd)
    assert torch.allclose(g_exact, g_torch, atol=1e-10, rtol=1e-10)
    assert torch.allclose(g_safe, g_torch, rtol=1e-4, atol=1e-6)


def _degenerate_inputs() -> list[tuple[str, torch.Tensor]]:
    return [
        ("identity", torch.eye(5, dtype=F64)),
        ("orthogonal", _rotation(5, seed=4)),
        ("repeated", torch.diag(torch.tensor([3.0, 2.0, 2.0, 2.0, 1.0], dtype=F64))),
        ("rank_deficient_square", _randn(5, 2, seed=5) @ _randn(2, 5, seed=6)),
        ("rank_deficient_tall", _randn(7, 2, seed=7) @ _randn(2, 4, seed=8)),
        ("zero", torch.zeros(4, 4, dtype=F64)),
    ]


@pytest.mark.parametrize("name,X", _degenerate_inputs())
def test_safe_svd_finite_for_repeated_singular_values(name: str, X: torch.Tensor) -> None:
    A = X.clone().requires_grad_()
    U, S, Vh = safe_svd(A)
    loss = (_randn(*U.shape, seed=20) * U).sum() + S.sum() + (_randn(*Vh.shape, seed=21) * Vh).sum()
    (g,) = torch.autograd.grad(loss, A)
    assert torch.isfinite(g).all(), name


@pytest.mark.parametrize("method", ["polar", "svd"])
@pytest.mark.parametrize("shape,special", [((5, 5), False), ((5, 5), True), ((7, 4), False), ((4, 7), False),
                                           ((3, 4, 4), True), ((2, 6, 3), False)])
def test_procrustes_gradcheck(method: str, shape: tuple[int, ...], special: bool) -> None:
    A = _randn(*shape, seed=30).requires_grad_()
    assert gradcheck(lambda X: procrustes(X, special=special, method=method), (A,))


def test_procrustes_gradcheck_special_with_flip() -> None:
    """A batch in which the Kabsch flip is active (det U Vᵀ = -1) for some matrices."""
    A = _randn(6, 4, 4, seed=31)
    flipped = torch.linalg.det(procrustes(A)) < 0
    assert flipped.any() and (~flipped).any()
    assert gradcheck(lambda X: procrustes(X, special=True), (A.requires_grad_(),))


@pytest.mark.parametrize("which,special", [("identity", False), ("identity", True), ("orthogonal", False),
                                           ("orthogonal", True), ("scaled_tall", False)])
def test_polar_gradcheck_at_repeated_singular_values(which: str, special: bool) -> None:
    """The polar factor is smooth wherever X has full rank, repeated singular values or not; the
    closed-form derivative is exact there (the safe-SVD route is only regularized)."""
    X = {"identity": torch.eye(5, dtype=F64), "orthogonal": _rotation(5, seed=32),
         "scaled_tall": 2.0 * torch.eye(6, 4, dtype=F64)}[which]
    assert gradcheck(lambda Y: procrustes(Y, special=special), (X.clone().requires_grad_(),))


def test_polar_gradient_at_identity_is_skew_part() -> None:
    """polar(I + εE) = I + ε (E - Eᵀ)/2 + O(ε²), so ∂⟨W, R⟩/∂X at I is (W - Wᵀ)/2."""
    W = _randn(6, 6, seed=33)
    for special in (False, True):
        X = torch.eye(6, dtype=F64, requires_grad=True)
        (g,) = torch.autograd.grad((W * procrustes(X, special=special)).sum(), X)
        assert torch.allclose(g, 0.5 * (W - W.mT), atol=1e-12)


@pytest.mark.parametrize("method", ["polar", "svd"])
@pytest.mark.parametrize("name,X", _degenerate_inputs())
def test_procrustes_finite_gradients_degenerate(method: str, name: str, X: torch.Tensor) -> None:
    A = X.clone().requires_grad_()
    special = X.shape[-1] == X.shape[-2]
    R = procrustes(A, special=special, method=method)
    (g,) = torch.autograd.grad((_randn(*R.shape, seed=34) * R).sum(), A)
    assert torch.isfinite(g).all(), (method, name)


def test_procrustes_matches_torch_autograd_for_distinct_singular_values() -> None:
    for shape, special in [((6, 6), False), ((6, 6), True), ((8, 5), False)]:
        A = _randn(*shape, seed=35)
        W = _randn(*shape, seed=36)
        grads = {}
        for method in ("polar", "svd", "torch"):
            X = A.clone().requires_grad_()
            (grads[method],) = torch.autograd.grad((W * procrustes(X, special=special, method=method)).sum(), X)
        assert torch.allclose(grads["polar"], grads["torch"], atol=1e-10)
        assert torch.allclose(grads["svd"], grads["torch"], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("shape", [(5, 5), (9, 4), (4, 9), (3, 6, 6)])
def test_procrustes_orthonormal(shape: tuple[int, ...]) -> None:
    R = procrustes(_randn(*shape, seed=40))
    m, n = shape[-2:]
    gram = R.mT @ R if m >= n else R @ R.mT
    assert torch.allclose(gram, torch.eye(min(m, n), dtype=F64).expand_as(gram), atol=1e-12)


def test_procrustes_special_is_rotation_and_fixes_determinant() -> None:
    A = _randn(64, 5, 5, seed=41)
    R = procrustes(A, special=True)
    assert torch.allclose(R.mT @ R, torch.eye(5, dtype=F64).expand(64, 5, 5), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(64, dtype=F64), atol=1e-12)
    plain = procrustes(A)
    flipped = torch.linalg.det(plain) < 0
    assert flipped.sum() > 10  # about half the batch needed the fix
    # where no flip is needed the two agree
    assert torch.allclose(R[~flipped], plain[~flipped], atol=1e-12)


def test_procrustes_rejects_special_non_square() -> None:
    with pytest.raises(ValueError):
        procrustes(torch.randn(5, 3), special=True)


def _rot2(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def test_procrustes_optimal_so2_angle_scan() -> None:
    """K=2: compare with a fine scan of SO(2); the optimum over SO(2) is attained."""
    thetas = torch.linspace(0, 2 * math.pi, 20001, dtype=F64)
    rots = _rot2(thetas)  # (T, 2, 2)
    for seed in range(8):
        C = _randn(2, 2, seed=50 + seed)
        R = procrustes(C, special=True)
        value = (R * C).sum()
        scan = (rots * C).sum((-2, -1))
        assert value >= scan.max() - 1e-12
        assert value - scan.max() < 1e-6  # the scan's grid is fine enough to come close
        # R itself is a rotation at the scan's best angle
        best = _rot2(thetas[scan.argmax()])
        assert torch.allclose(R, best, atol=1e-3)


@pytest.mark.parametrize("k", [3, 5])
def test_procrustes_optimal_against_random_and_nearby_rotations(k: int) -> None:
    C = _randn(k, k, seed=60 + k)
    R = procrustes(C, special=True)
    value = (R * C).sum()
    # many random rotations (Haar)
    q, r = torch.linalg.qr(_randn(4000, k, k, seed=61))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    q[torch.linalg.det(q) < 0, :, 0] *= -1
    assert ((q * C).sum((-2, -1)) <= value + 1e-12).all()
    # rotations near R: R expm(εΩ) for random skew Ω
    om = _randn(500, k, k, seed=62)
    om = 1e-3 * (om - om.mT)
    near = R @ torch.linalg.matrix_exp(om)
    assert ((near * C).sum((-2, -1)) <= value + 1e-12).all()


def test_procrustes_unconstrained_is_nearest_orthonormal() -> None:
    X = _randn(7, 3, seed=63)
    R = procrustes(X)
    best = (R - X).square().sum()
    q, _ = torch.linalg.qr(_randn(3000, 7, 3, seed=64))
    assert ((q - X).square().sum((-2, -1)) >= best - 1e-12).all()


def test_ortho_det_gradient_matches_det_on_orthogonal() -> None:
    for seed in range(3):
        Q = _rotation(4, seed=70 + seed)
        if seed == 1:
            Q = Q.clone()
            Q[:, 0] = -Q[:, 0]  # det -1
        X1, X2 = Q.clone().requires_grad_(), Q.clone().requires_grad_()
        d1, d2 = ortho_det(X1), torch.linalg.det(X2)
        assert torch.allclose(d1, d2)
        (g1,) = torch.autograd.grad(d1, X1)
        (g2,) = torch.autograd.grad(d2, X2)
        assert torch.allclose(g1, g2, atol=1e-12)


def test_compute_dtype_float64_on_float32_input() -> None:
    A = _randn(3, 16, 16, seed=80, dtype=torch.float32).requires_grad_()
    R = procrustes(A, special=True, compute_dtype=F64)
    assert R.dtype == torch.float32
    (g,) = torch.autograd.grad(R.sum(), A)
    assert g.dtype == torch.float32 and torch.isfinite(g).all()
    R64 = procrustes(A.detach().double(), special=True)
    assert (R.double() - R64).abs().max() < 1e-6  # float64 result rounded once


def test_no_autocast_inside_procrustes() -> None:
    A = _randn(4, 12, 12, seed=81, dtype=torch.float32)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert (A @ A).dtype == torch.bfloat16  # autocast is active out here ...
        R = procrustes(A, special=True)
    assert R.dtype == torch.float32  # ... but not inside
    assert torch.allclose(R.mT @ R, torch.eye(12).expand(4, 12, 12), atol=1e-5)


def test_half_precision_input_is_promoted() -> None:
    A = _randn(8, 8, seed=82, dtype=torch.float32).to(torch.bfloat16)
    R = procrustes(A)
    assert R.dtype == torch.bfloat16
    assert torch.allclose((R.float().mT @ R.float()), torch.eye(8), atol=3e-2)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("method", ["polar", "svd", "torch"])
def test_procrustes_refuses_non_finite_input_by_index(bad: float, method: str) -> None:
    from niso_geom.errors import NumericalError

    X = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        Y = X.clone()
        Y[1, 2, 3] = bad
    with pytest.raises(NumericalError, match=r"procrustes input has 1 non-finite entr\(ies\).*\(1, 2, 3\)"):
        procrustes(Y, method=method)
