"""Interop with e3nn: SH-aligned latent blocks <-> e3nn irreps tensors.

Conventions
-----------
Ours (``niso_geom.harmonics.sphere``): real SH ordered by l then m = −l..l, orthonormal, no
Condon–Shortley phase, z the polar axis; latent coefficients ``(..., K, C)`` with the K axis
typed by an SH-aligned :class:`SpectralType` (blocks of dim 2l+1, e.g. ``sphere(lmax)``) and
rotated by ``x -> D(R) x`` with ``Y(R v) = D(R) Y(v)``.

e3nn: a flat ``(..., irreps.dim)`` tensor, irreps ``C x l`` per block (parity (−1)^l, as for
``o3.Irreps.spherical_harmonics``), each block stored multiplicity-major, i.e. as ``(C, 2l+1)``
flattened; vectors in e3nn's frame are ``P v = (v_y, v_z, v_x)``
(``niso_geom.harmonics.wigner.AXES_TO_E3NN``), so our rotation R is e3nn's ``P R Pᵀ``.

The change of basis Q_l (e3nn coefficients = Q_l · ours) is *computed*, not assumed: a
least-squares fit of our ``real_sph_harm`` against e3nn's ``spherical_harmonics`` (integral
normalisation) at P v, checked to be orthogonal and to reproduce the harmonics to 1e-10, and
snapped to exact ±1/0 entries when it is a signed permutation (for e3nn 0.6 it is the identity).
Then ``bridge(D(R) x) = D_e3nn(P R Pᵀ) bridge(x)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from e3nn import o3
from torch import Tensor, nn

from niso_geom.equivariant.testing import EquivariantModule
from niso_geom.equivariant.types import SpectralType, block_diag
from niso_geom.harmonics.sphere import real_sph_harm
from niso_geom.harmonics.wigner import AXES_TO_E3NN

__all__ = [
    "E3nnAdapter",
    "E3nnBridge",
    "e3nn_change_of_basis",
    "irreps_from_type",
    "to_e3nn_rotation",
]


@lru_cache(maxsize=None)
def _change_of_basis_np(l: int) -> np.ndarray:
    d = 2 * l + 1
    rng = np.random.default_rng(1234 + l)
    v = rng.standard_normal((max(8 * d, 64), 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ours = real_sph_harm(l, v)[:, l * l :]  # (N, d), degree l only
    u = torch.from_numpy(v @ AXES_TO_E3NN.T)
    theirs = o3.spherical_harmonics(l, u, normalize=True, normalization="integral").numpy()
    # ours ≈ theirs @ q, so a function aᵀY_ours has e3nn coefficients q · a
    q, *_ = np.linalg.lstsq(theirs, ours, rcond=None)
    resid = np.abs(theirs @ q - ours).max()
    if resid > 1e-10 or np.abs(q @ q.T - np.eye(d)).max() > 1e-10:
        raise RuntimeError(
            f"degree {l}: our real SH are not an orthogonal recombination of e3nn's "
            f"(fit residual {resid:.2e}); the conventions disagree"
        )
    snapped = np.round(q)
    if np.abs(q - snapped).max() < 1e-8:
        q = snapped
    q.setflags(write=False)
    return q


def e3nn_change_of_basis(
    l: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> Tensor:
    """Q_l (2l+1, 2l+1) with e3nn coefficients = Q_l @ our coefficients, for degree l.

    Orthogonal; ``Y_ours(v) = Q_lᵀ Y_e3nn(P v)``.
    """
    if l < 0:
        raise ValueError(f"degree must be >= 0, got {l}")
    q = torch.tensor(_change_of_basis_np(int(l)), dtype=torch.float64)
    return q.to(dtype=dtype or torch.get_default_dtype(), device=device)


def to_e3nn_rotation(R: Tensor) -> Tensor:
    """Our rotation matrices (..., 3, 3) expressed in e3nn's frame, P R Pᵀ."""
    P = torch.as_tensor(AXES_TO_E3NN, dtype=R.dtype, device=R.device)
    return P @ R @ P.T


def irreps_from_type(spectral_type: SpectralType | str, channels: int) -> o3.Irreps:
    """e3nn irreps of latent coefficients: one ``channels x l`` term per block (not simplified)."""
    t = SpectralType(spectral_type)
    return o3.Irreps([(channels, (l, (-1) ** l)) for l in t.degrees])


class E3nnBridge(nn.Module):
    """Explicit change of basis between latent ``(..., K, C)`` and e3nn ``(..., irreps.dim)``.

    Parameters
    ----------
    spectral_type : SpectralType
        SH-aligned type (every block of dim 2l+1), e.g. ``SpectralType.sphere(lmax)``.
    channels : int
        C.

    Attributes
    ----------
    irreps : o3.Irreps
        ``C x 0e + C x 1o + ...``, one term per block.

    Shapes
    ------
    ``to_e3nn``: (..., K, C) -> (..., K·C); ``from_e3nn``: the inverse. Exact (Q is a signed
    permutation), and differentiable.
    """

    def __init__(self, spectral_type: SpectralType | str, channels: int) -> None:
        super().__init__()
        self.spectral_type = SpectralType(spectral_type)
        if not self.spectral_type.is_sphere_aligned:
            raise ValueError(
                f"the e3nn bridge needs SH-aligned blocks of odd dim 2l+1, got {self.spectral_type}"
            )
        self.channels = int(channels)
        self.irreps = irreps_from_type(self.spectral_type, self.channels)
        degrees = self.spectral_type.degrees
        q = block_diag([e3nn_change_of_basis(l, dtype=torch.float64) for l in degrees])
        self.register_buffer("Q", q, persistent=False)

    def to_e3nn(self, x: Tensor) -> Tensor:
        """(..., K, C) latent -> (..., irreps.dim) e3nn tensor."""
        t = self.spectral_type
        if x.dim() < 2 or x.shape[-2:] != (t.dim, self.channels):
            raise ValueError(
                f"expected (..., {t.dim}, {self.channels}) for {t}, got {tuple(x.shape)}"
            )
        y = torch.einsum("ij,...jc->...ic", self.Q.to(x.dtype), x)
        parts = [y[..., sl, :].transpose(-1, -2).flatten(-2) for sl in t.slices()]
        return torch.cat(parts, dim=-1)

    def from_e3nn(self, y: Tensor) -> Tensor:
        """(..., irreps.dim) e3nn tensor -> (..., K, C) latent."""
        if y.shape[-1] != self.irreps.dim:
            raise ValueError(
                f"expected (..., {self.irreps.dim}) for {self.irreps}, got {tuple(y.shape)}"
            )
        c = self.channels
        parts, i = [], 0
        for d in self.spectral_type.blocks:
            parts.append(y[..., i : i + c * d].unflatten(-1, (c, d)).transpose(-1, -2))
            i += c * d
        x = torch.cat(parts, dim=-2)
        return torch.einsum("ji,...jc->...ic", self.Q.to(y.dtype), x)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_e3nn(x)

    def extra_repr(self) -> str:
        return f"spectral_type={self.spectral_type}, channels={self.channels}, irreps={self.irreps}"


class E3nnAdapter(EquivariantModule):
    """Run an e3nn module on latent coefficients.

    ``x (..., K, C_in) -> bridge -> net -> [inverse bridge of out_type]``.

    Parameters
    ----------
    net : nn.Module
        e3nn module whose input irreps are ``irreps_from_type(in_type, in_channels)``.
    in_type : SpectralType
        SH-aligned input type.
    in_channels : int
    out_type : SpectralType, optional
        When given, the output of ``net`` must be ``irreps_from_type(out_type, out_channels)``
        and is returned as latent (..., K_out, out_channels); otherwise the raw e3nn output
        (..., irreps_out.dim) is returned (invariant when ``net`` outputs only scalars).
    out_channels : int, optional
        Defaults to ``in_channels``.
    """

    def __init__(
        self,
        net: nn.Module,
        in_type: SpectralType | str,
        in_channels: int,
        *,
        out_type: SpectralType | str | None = None,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.in_type = SpectralType(in_type)
        self.out_type = SpectralType(out_type) if out_type is not None else None
        self.in_channels = int(in_channels)
        self.net = net
        self.bridge_in = E3nnBridge(self.in_type, self.in_channels)
        irreps_in = getattr(net, "irreps_in", None)
        if irreps_in is not None and o3.Irreps(irreps_in) != self.bridge_in.irreps:
            raise ValueError(
                f"net.irreps_in is {irreps_in}, the bridge gives {self.bridge_in.irreps}"
            )
        self.bridge_out: E3nnBridge | None = None
        if self.out_type is not None:
            oc = self.in_channels if out_channels is None else int(out_channels)
            self.bridge_out = E3nnBridge(self.out_type, oc)
            irreps_out = getattr(net, "irreps_out", None)
            if irreps_out is not None and o3.Irreps(irreps_out) != self.bridge_out.irreps:
                raise ValueError(
                    f"net.irreps_out is {irreps_out}, out_type needs {self.bridge_out.irreps}"
                )

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(self.bridge_in.to_e3nn(x))
        return self.bridge_out.from_e3nn(y) if self.bridge_out is not None else y
