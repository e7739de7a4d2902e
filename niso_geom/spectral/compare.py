"""Learned-versus-analytic spectra: the metrics defined in docs/spectra.md ("Metrics").

Given a learned operator (Φ (N,K), Λ (K,), M (N,)) on a domain whose ground truth
is an :class:`Eigenbasis` grouped into eigenspaces E₁, E₂, … (equal analytic
eigenvalue), :func:`compare` reports

* purity of each learned vector: max_E ‖P_E φ‖²/‖φ‖² in the ground-truth mass inner
  product, and the eigenspace it lands in (its *assignment*);
* multiplicity: how many learned vectors land in each E, versus dim E;
* eigenvalue agreement: Spearman rank correlation between each learned λ and the
  analytic eigenvalue of its eigenspace, and the relative error after the best scale fit;
* τ block energy: the share of Σ τᵢⱼ² inside blocks of vectors assigned to the same E,
  averaged over maps, beside the same share for Haar-random orthogonal matrices;
* commutator ‖T O − O T‖_F / ‖O‖_F of the learned operator O = Φ Λ Φᵀ M with the group's
  generators T;
* mass correlation (Pearson) between the learned and the ground-truth mass, also restricted
  to the part of the mass that signals in the span of the first K analytic vectors can see;
* on the sphere, the Wigner-D match of each degree block: the learned block aligned to
  the real SH of its degree by Procrustes (Φ_l ≈ Y_l Q_l), then
  ‖τ_l − Q_lᵀ D^l(R) Q_l‖_F / ‖D^l(R)‖_F.

NumPy only; works on any domain (or NIso latent grid) with a ground-truth basis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from niso_geom.spectral.eigenbasis import Eigenbasis


@dataclass(frozen=True)
class Assignment:
    """Where each learned vector lands among the ground-truth eigenspaces."""

    energy: np.ndarray  # (n_spaces, K) share of each learned vector's energy per eigenspace
    space: np.ndarray  # (K,) index of the eigenspace with the most energy
    purity: np.ndarray  # (K,) that share

    def counts(self, n_spaces: int) -> np.ndarray:
        return np.bincount(self.space, minlength=n_spaces)


def assign_eigenspaces(phi: np.ndarray, gt: Eigenbasis, spaces: Sequence[np.ndarray]) -> Assignment:
    """Energy of each learned vector (columns of phi (N,K)) in each ground-truth eigenspace."""
    phi = np.asarray(phi, dtype=np.float64)
    C = gt.evecs.T @ (gt.mass[:, None] * phi)  # (K_gt, K)
    norms = np.einsum("nk,n,nk->k", phi, gt.mass, phi)
    norms = np.where(norms > 0, norms, 1.0)
    energy = np.stack([np.sum(C[s] ** 2, axis=0) for s in spaces]) / norms[None, :]
    space = np.argmax(energy, axis=0)
    return Assignment(energy, space, energy[space, np.arange(phi.shape[1])])


def block_energy(taus: np.ndarray, labels: np.ndarray) -> float:
    """Mean over maps (T,K,K) of the share of Σ τᵢⱼ² with labels[i] == labels[j]."""
    taus = np.asarray(taus, dtype=np.float64).reshape(-1, *np.shape(taus)[-2:])
    same = labels[:, None] == labels[None, :]
    tot = np.sum(taus**2, axis=(1, 2))
    return float(np.mean(np.sum(taus**2 * same, axis=(1, 2)) / np.where(tot > 0, tot, 1.0)))


def random_block_energy(labels: np.ndarray, *, samples: int = 16, seed: int = 0) -> float:
    """Block energy of Haar-random orthogonal K×K matrices for the same labels."""
    rng = np.random.default_rng(seed)
    K = len(labels)
    qs = []
    for _ in range(samples):
        q, r = np.linalg.qr(rng.standard_normal((K, K)))
        qs.append(q * np.sign(np.diag(r)))
    return block_energy(np.stack(qs), labels)


def learned_operator(phi: np.ndarray, evals: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Dense O = Φ Λ Φᵀ M (N,N): O φ_i = λ_i φ_i, self-adjoint in the learned mass."""
    return (phi * evals[None, :]) @ (phi.T * mass[None, :])


def commutator(op: np.ndarray, generators: Sequence) -> float:
    """Mean over generators T of ‖T O − O T‖_F / ‖O‖_F (T dense or sparse (N,N))."""
    nO = np.linalg.norm(op)
    vals = []
    for T in generators:
        TO = T @ op
        OT = (T.T @ op.T).T  # O T for sparse or dense T
        vals.append(np.linalg.norm(np.asarray(TO) - np.asarray(OT)) / nO)
    return float(np.mean(vals))


def mass_correlation(learned: np.ndarray, reference: np.ndarray) -> float | None:
    """Pearson correlation; None when the reference mass is constant (e.g. a torus grid)."""
    learned, reference = np.asarray(learned, float), np.asarray(reference, float)
    if np.ptp(reference) <= 1e-12 * np.abs(reference).max() or np.ptp(learned) == 0:
        return None
    return float(np.corrcoef(learned, reference)[0, 1])


def scale_fit_error(learned: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Best scale s = ⟨λ, μ⟩/⟨λ, λ⟩ and ‖sλ − μ‖/‖μ‖."""
    lam, mu = np.asarray(learned, float), np.asarray(reference, float)
    s = float(lam @ mu / max(lam @ lam, 1e-300))
    return s, float(np.linalg.norm(s * lam - mu) / max(np.linalg.norm(mu), 1e-300))


def visible_mass_projector(basis: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Orthogonal projector (N, N) onto the masses that the Gram matrix of a basis can see.

    Signals in span(B), B (N, K), meet a mass w only through ``Bᵀ diag(w) B``; masses in the null
    space of ``w ↦ Bᵀ diag(w) B`` change no loss of such signals and cannot be learned from them.
    The map's own Gram matrix is ``(B Bᵀ) ∘ (B Bᵀ)``; its eigenvectors above ``rtol`` times the
    largest eigenvalue span the visible masses.
    """
    B = np.asarray(basis, dtype=np.float64)
    G = B @ B.T
    w, V = np.linalg.eigh(G * G)
    V = V[:, w > rtol * w.max()]
    return V @ V.T


def visible_mass_correlation(learned: np.ndarray, reference: np.ndarray, basis: np.ndarray,
                             max_points: int = 2048) -> float | None:
    """:func:`mass_correlation` of the two masses' parts that signals in span(basis) can see
    (:func:`visible_mass_projector`); None when the reference is constant, or when there are more
    than ``max_points`` points (the projector is a dense N × N eigendecomposition)."""
    if mass_correlation(learned, reference) is None or len(learned) > max_points:
        return None
    P = visible_mass_projector(basis)
    return mass_correlation(P @ np.asarray(learned, float), P @ np.asarray(reference, float))


def wigner_match(phi: np.ndarray, assignment: Assignment, degrees: np.ndarray, harmonics: np.ndarray,
                 mass: np.ndarray, taus: np.ndarray, rotations: np.ndarray) -> dict[int, float]:
    """Per degree l: mean over maps of ‖τ_l − Q_lᵀ D^l(R) Q_l‖_F / ‖D^l‖_F.

    ``degrees`` (n_spaces,) is the SH degree of each ground-truth eigenspace, ``harmonics``
    (N, (L+1)²) the real SH at the points, ``mass`` the quadrature; only degrees whose
    learned block has exactly 2l+1 vectors are matched (others are reported as NaN).
    """
    from niso_geom.harmonics.wigner import wigner_D

    out: dict[int, float] = {}
    for s, l in enumerate(degrees):
        idx = np.flatnonzero(assignment.space == s)
        if len(idx) != 2 * l + 1:
            out[int(l)] = float("nan")
            continue
        Yl = harmonics[:, l * l:(l + 1) ** 2]
        C = Yl.T @ (mass[:, None] * phi[:, idx])  # (2l+1, 2l+1): Φ_l ≈ Y_l C
        U, _, Vt = np.linalg.svd(C)
        Q = U @ Vt
        errs = []
        for tau, R in zip(taus, rotations):
            D = wigner_D(int(l), R)
            errs.append(np.linalg.norm(tau[np.ix_(idx, idx)] - Q.T @ D @ Q) / np.linalg.norm(D))
        out[int(l)] = float(np.mean(errs))
    return out


def compare(phi: np.ndarray, evals: np.ndarray, mass: np.ndarray, gt: Eigenbasis, *,
            spaces: Sequence[np.ndarray] | None = None, taus: np.ndarray | None = None,
            generators: Sequence | None = None, sphere: dict | None = None,
            reference_mass: np.ndarray | None = None) -> dict:
    """All metrics as a flat dict (JSON-ready).

    Parameters
    ----------
    phi, evals, mass : the learned operator, (N,K), (K,) ascending, (N,).
    gt : ground-truth eigenbasis (on the same points; may have more vectors than K).
    spaces : its eigenspaces (index arrays); default ``gt.eigenspaces()``.
    taus : (T, K, K) isometric maps of transformed pairs, for the block energy.
    generators : the group's generators as (N,N) operators, for the commutator.
    sphere : {"degrees": (n_spaces,), "harmonics": (N, (L+1)²), "rotations": (T,3,3)}
        to add the Wigner-D match (taus[t] must belong to rotations[t]).
    reference_mass : mass to correlate with (default ``gt.mass``).
    """
    phi, evals, mass = (np.asarray(a, dtype=np.float64) for a in (phi, evals, mass))
    spaces = gt.eigenspaces() if spaces is None else list(spaces)
    ref_mass = gt.mass if reference_mass is None else reference_mass
    K = phi.shape[1]
    a = assign_eigenspaces(phi, gt, spaces)
    space_evals = np.array([gt.evals[s].mean() for s in spaces])
    # eigenspaces that the first K analytic vectors fill completely
    dims = np.array([len(s) for s in spaces])
    n_full = int(np.searchsorted(np.cumsum(dims), K, side="right"))
    counts = a.counts(len(spaces))
    matched = space_evals[a.space]
    rho = spearmanr(evals, matched).statistic if np.ptp(matched) > 0 and np.ptp(evals) > 0 else float("nan")
    scale, scale_err = scale_fit_error(evals, matched)
    out = {
        "k": K,
        "n": phi.shape[0],
        "purity_mean": float(a.purity.mean()),
        "purity_min": float(a.purity.min()),
        "purity": a.purity.tolist(),
        "assignment": a.space.tolist(),
        "multiplicity": counts[:max(n_full, int(a.space.max()) + 1)].tolist(),
        "analytic_multiplicity": dims[:max(n_full, int(a.space.max()) + 1)].tolist(),
        "multiplicity_match": float(np.mean(counts[:n_full] == dims[:n_full])) if n_full else float("nan"),
        "outside_first_k": int(np.sum(a.space >= n_full)),
        "eigenvalue_spearman": float(rho),
        "eigenvalue_scale": scale,
        "eigenvalue_scale_fit_error": scale_err,
        "mass_correlation": mass_correlation(mass, ref_mass),
        "mass_correlation_visible": visible_mass_correlation(mass, ref_mass, gt.evecs[:, :K]),
        "mass_cv": float(np.std(mass) / np.mean(mass)),
    }
    if taus is not None:
        taus = np.asarray(taus, dtype=np.float64)
        out["tau_block_energy"] = block_energy(taus, a.space)
        out["tau_block_energy_random"] = random_block_energy(a.space)
    if generators is not None:
        out["commutator"] = commutator(learned_operator(phi, evals, mass), generators)
    if sphere is not None and taus is not None:
        per_l = wigner_match(phi, a, np.asarray(sphere["degrees"]), sphere["harmonics"], gt.mass, taus,
                             np.asarray(sphere["rotations"]))
        out["wigner_error_per_degree"] = per_l
        finite = [v for v in per_l.values() if np.isfinite(v)]
        out["wigner_error"] = float(np.mean(finite)) if len(finite) == len(per_l) else float("nan")
    return out
