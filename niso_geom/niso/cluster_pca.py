"""Principal axes inside clusters of near-equal learned eigenvalues: a discrete escape move.

Inside a cluster of learned eigenvalues closer than the mask's width, the NIso loss hardly
tells bases apart (τ may mix the cluster's vectors freely), and a basis that mixes two
irreducible pieces of different power 50/50 is a stationary point of every smooth term that
prefers unmixed ones (the correlation of a 45° mixture is at its maximum, its gradient zero;
``docs/spectra.md``). Rotating each cluster's vectors onto the principal axes of the signals'
second moments in that cluster — highest power first, at the cluster's lowest eigenvalue —
leaves the span, Λ and the M-orthonormality unchanged and breaks the tie the way the data
do: for group-invariant statistics the principal axes are the irreducible pieces.
"""

from __future__ import annotations

import torch

from niso_geom.niso.operator import LearnedOperator, project_moment

__all__ = ["eigenvalue_clusters", "rotate_clusters_to_principal_axes"]


def eigenvalue_clusters(evals: torch.Tensor, gap: float, max_size: int | None = None) -> list[list[int]]:
    """Runs of ascending eigenvalues (K,) whose consecutive gaps are all below ``gap``.

    Returns the runs of two or more indices (into ``evals``); a run longer than ``max_size`` is
    cut into consecutive pieces of at most that size (a piece of one index is dropped).
    """
    if not gap > 0:
        raise ValueError(f"gap must be positive, got {gap}")
    if max_size is not None and max_size < 2:
        raise ValueError(f"max_size must be >= 2, got {max_size}")
    values = evals.detach().cpu().tolist()
    runs: list[list[int]] = []
    current = [0] if values else []
    for i in range(1, len(values)):
        if values[i] - values[i - 1] < gap:
            current.append(i)
        else:
            runs.append(current)
            current = [i]
    if current:
        runs.append(current)
    out = []
    for run in runs:
        size = len(run) if max_size is None else max_size
        out.extend(piece for piece in (run[s:s + size] for s in range(0, len(run), size)) if len(piece) > 1)
    return out


@torch.no_grad()
def rotate_clusters_to_principal_axes(op: LearnedOperator, moment: torch.Tensor, gap: float, *,
                                      max_size: int | None = None,
                                      optimizer: torch.optim.Optimizer | None = None) -> int:
    """Rotate every eigenvalue cluster of ``op`` onto the principal axes of ``moment``, in place.

    Parameters
    ----------
    op : the operator; its ``phi_raw`` columns are rotated (Φ = M^{-1/2} polar(M^{1/2} Φ_raw)
        then rotates by the same orthogonal matrix, so Λ, M and Φᵀ M Φ = I are unchanged).
    moment : Tensor (N, N), the signals' second moments E[x xᵀ].
    gap, max_size : see :func:`eigenvalue_clusters`.
    optimizer : if given (Adam/AdamW), its first moments of ``phi_raw`` are rotated with the
        columns and its second moments mixed by the squared rotation.

    Returns
    -------
    The number of clusters rotated.
    """
    state = op()
    order = torch.argsort(op.eigenvalues().detach(), stable=True)  # sorted position -> raw column
    second = project_moment(state, moment)  # (K, K)
    adam = optimizer.state.get(op.phi_raw, {}) if optimizer is not None else {}
    clusters = eigenvalue_clusters(state.evals, gap, max_size)
    for cluster in clusters:
        idx = torch.as_tensor(cluster, device=second.device)
        power, vecs = torch.linalg.eigh(second[idx][:, idx].double())
        rot = vecs.flip(-1)  # highest power first
        if torch.linalg.det(rot) < 0:  # keep a rotation (the polar factor of a square Φ is special)
            rot[:, -1] = -rot[:, -1]
        cols = order[idx].to(op.phi_raw.device)
        r = rot.to(op.phi_raw)
        op.phi_raw[:, cols] = op.phi_raw[:, cols] @ r
        if "exp_avg" in adam:
            adam["exp_avg"][:, cols] = adam["exp_avg"][:, cols] @ r
        if "exp_avg_sq" in adam:
            adam["exp_avg_sq"][:, cols] = adam["exp_avg_sq"][:, cols] @ r.square()
    return len(clusters)
