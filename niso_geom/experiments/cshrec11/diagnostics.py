"""Diagnostics of a pre-trained (or fine-tuned) NIso model on conformal SHREC'11 views.

* :func:`equivariance_error` — the paper's Table 4 ratio ``‖τ ẑ − Tẑ‖ / ‖Tẑ‖`` on pairs of
  views of held-out meshes, beside the same ratio without the map (τ = I);
* :func:`mass_map` — the learned mass M on the latent grid beside sin θ of its rows;
* :func:`spectral_summary` — the learned eigenbasis against the real SH of the latent grid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from niso_geom.experiments.common import standard_error
from niso_geom.harmonics.sphere import lmax_for, num_harmonics, real_sph_harm_angles, sh_eigenvalues
from niso_geom.niso.autoencoder import NIsoAutoencoder
from niso_geom.niso.isometry import iso_solve_coeffs
from niso_geom.niso.models import latent_sphere_coords
from niso_geom.spectral.compare import compare, mass_correlation
from niso_geom.spectral.eigenbasis import Eigenbasis

from .config import CShrec11Config
from .severity import bin_labels, bin_of, pair_scales
from .views import ViewPairs, ViewTable

__all__ = ["equivariance_error", "mass_map", "spectral_summary"]


@torch.no_grad()
def equivariance_error(model: NIsoAutoencoder, table: ViewTable, ids: np.ndarray, pairs: int, *, seed: int = 0,
                       batch: int = 16, p_original: float = 0.2,
                       transforms: np.ndarray | None = None) -> dict[str, Any]:
    """The paper's equivariance error on pairs of views of the meshes ``ids`` (held-out test meshes).

    For each pair (x, Tx): ẑ = Φᵀ M E(x), Tẑ = Φᵀ M E(Tx), τ the masked Procrustes map, and
    ``‖τ ẑ − Tẑ‖_F / ‖Tẑ‖_F``; also the same ratio for τ = I (no map) as a reference.
    Returns means and standard errors over pairs. With ``transforms`` (the views' SL(2, ℂ)
    matrices, (rows of ``table``, V, 2, 2)) also ``equiv_error_by_k``: per bin of the pair's
    ``k`` (:func:`~.severity.pair_scales`), the mean, s.e. and number of pairs.
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    src = ViewPairs(table, ids, batch, seed=seed, p_original=p_original)
    state = model.state().detach()
    errs, ident, scales = [], [], []
    try:
        for _ in range(math.ceil(pairs / batch)):
            obj, first, second = src.draw()
            x, tx = table.get(obj, first).to(device), table.get(obj, second).to(device)
            if transforms is not None:
                scales.append(pair_scales(transforms, table.rows(obj), first, second))
            c0, c1 = model.coefficients(x, state), model.coefficients(tx, state)
            tau = iso_solve_coeffs(c0, c1, state.evals if model.mask else None, method=model.method, eps=model.eps)
            den = c1.flatten(1).norm(dim=1).clamp_min(1e-12)
            errs.append(((tau @ c0 - c1).flatten(1).norm(dim=1) / den).cpu())
            ident.append(((c0 - c1).flatten(1).norm(dim=1) / den).cpu())
    finally:
        model.train(was)
    e, i = torch.cat(errs)[:pairs].double().numpy(), torch.cat(ident)[:pairs].double().numpy()
    out: dict[str, Any] = {"equiv_error": float(e.mean()), "equiv_error_se": standard_error(e),
                           "identity_error": float(i.mean()), "identity_error_se": standard_error(i), "pairs": len(e)}
    if transforms is not None:
        b = bin_of(np.concatenate(scales)[:pairs])
        out["equiv_error_by_k"] = {label: {"mean": float(e[b == j].mean()) if np.any(b == j) else None,
                                           "se": standard_error(e[b == j]) if np.any(b == j) else None,
                                           "pairs": int(np.sum(b == j))} for j, label in enumerate(bin_labels())}
    return out


def mass_map(model: NIsoAutoencoder, cfg: CShrec11Config) -> dict[str, Any]:
    """The learned mass M on the latent grid beside sin θ of its rows (correlations, and the maps).

    Returns ``mass`` and ``sin_theta`` (h, w), ``theta`` (h,), ``phi`` (w,), the correlations
    ``mass_sin_correlation`` (all cells) and ``mass_sin_row_correlation`` (ring means), and
    ``mass_cv`` (coefficient of variation of M).
    """
    state = model.state().detach().to("cpu", torch.float64)
    h, w = model.latent_shape
    theta, phi = latent_sphere_coords(tuple(cfg.res), cfg.levels, "poles")
    M = state.mass.numpy().reshape(h, w)
    sin = np.broadcast_to(np.sin(theta)[:, None], (h, w))
    return {"mass": M, "sin_theta": np.array(sin), "theta": theta, "phi": phi,
            "mass_sin_correlation": mass_correlation(M.ravel(), sin.ravel()),
            "mass_sin_row_correlation": mass_correlation(M.mean(1), np.sin(theta)),
            "mass_cv": float(M.std() / M.mean())}


def spectral_summary(model: NIsoAutoencoder, cfg: CShrec11Config) -> dict[str, Any]:
    """The learned eigenbasis against the real SH sampled on the latent grid (:func:`spectral.compare`).

    The reference basis uses the latent grid's sin θ cell weights as its mass (a midpoint rule,
    so SH orthonormality is approximate): purity, per-degree multiplicities, eigenvalue rank
    correlation with l(l+1). The conformal views are Möbius transforms, not rotations, so this
    is a diagnostic, not a target.
    """
    state = model.state().detach().to("cpu", torch.float64)
    theta, phi = latent_sphere_coords(tuple(cfg.res), cfg.levels, "poles")
    T, P = np.meshgrid(theta, phi, indexing="ij")
    L = lmax_for(state.k)
    Y = real_sph_harm_angles(L, T.ravel(), P.ravel())
    w = np.sin(T.ravel())
    w = w * (4 * np.pi / w.sum())
    gt = Eigenbasis(sh_eigenvalues(L), Y[:, :num_harmonics(L)], w)
    rep = compare(state.phi.numpy(), state.evals.numpy(), state.mass.numpy(), gt, reference_mass=w)
    keys = ("purity_mean", "multiplicity", "analytic_multiplicity", "eigenvalue_spearman", "mass_correlation")
    return {k: rep[k] for k in keys}
