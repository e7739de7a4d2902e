"""sign det(τ) from one LU of X equals the sign of det(U Vᵀ), also where X is (nearly) singular."""

import torch

from niso_geom.niso.linalg import procrustes


def _reference(X: torch.Tensor) -> torch.Tensor:
    U, _, Vh = torch.linalg.svd(X.double())
    d = torch.ones(X.shape[:-1], dtype=torch.float64)
    d[..., -1] = torch.linalg.det(U @ Vh).sign()
    return (U * d.unsqueeze(-2)) @ Vh


def test_special_polar_matches_the_svd_reference_for_both_signs_and_near_singular_inputs():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 12, 12, generator=g, dtype=torch.float64)
    X[1, 0] *= -1  # flip det signs across the batch
    X[3, 5] *= -1
    U, S, Vh = torch.linalg.svd(X)
    S[4, -1] = 1e-9  # near singular: the LU's sign cannot be trusted, the fallback decides
    S[5, -1] = 0.0  # exactly singular: det X = 0
    X = U @ torch.diag_embed(S) @ Vh
    for dtype in (torch.float64, torch.float32):
        R = procrustes(X.to(dtype), special=True).double()
        torch.testing.assert_close(torch.linalg.det(R), torch.ones(6, dtype=torch.float64), atol=1e-4, rtol=0)
        torch.testing.assert_close(R, _reference(X.to(dtype)), atol=2e-4 if dtype == torch.float32 else 1e-9,
                                   rtol=0)
