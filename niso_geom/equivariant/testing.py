"""Equivariance checks that ship with the library (for tests here and downstream).

``assert_equivariant`` runs the module on a float64 copy, transforms the input's K axis with
random group elements and compares ``f(g·x)`` with ``g·f(x)`` (or with ``f(x)`` for an
invariant output), so the check itself adds no float32 error (e3nn PR #325/#326).
Errors are logged, never printed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from niso_geom.equivariant.types import SpectralType, WignerD, random_orthogonal, random_rotation

__all__ = [
    "Action",
    "EquivariantModule",
    "assert_equivariant",
    "block_action",
    "orthogonal_action",
    "rotation_action",
]

log = logging.getLogger(__name__)

Action = Callable[[torch.Generator], "Tensor | tuple[Tensor, Tensor]"]
"""``action(generator) -> g`` or ``(g_in, g_out)``: matrices (K_in, K_in) and (K_out, K_out)
acting on the K axis of input and output. A single matrix acts on both."""

ActionName = Literal["block", "block_special", "orthogonal"]


def block_action(spectral_type: SpectralType | str, *, special: bool = False) -> Action:
    """Random block-orthogonal matrices of a type (Haar on O(d) or SO(d) per block)."""
    t = SpectralType(spectral_type)

    def sample(generator: torch.Generator) -> Tensor:
        return t.random_isometry(special=special, generator=generator, dtype=torch.float64)

    sample.__name__ = f"block{'_special' if special else ''}_action({t})"
    return sample


def orthogonal_action(dim: int, *, det: int | None = None) -> Action:
    """Haar-random orthogonal (K, K) matrices of O(K); ``det=±1`` forces the determinant."""

    def sample(generator: torch.Generator) -> Tensor:
        q = random_orthogonal(dim, generator=generator, dtype=torch.float64)
        if det is not None and torch.sign(torch.linalg.det(q)).item() != det:
            q[:, 0] = -q[:, 0]
        return q

    sample.__name__ = f"orthogonal_action(O({dim}){'' if det is None else f', det={det}'})"
    return sample


def rotation_action(spectral_type: SpectralType | str, wigner_D: WignerD) -> Action:
    """Block-diagonal Wigner-D matrices of Haar-random rotations on an SH-aligned type."""
    t = SpectralType(spectral_type)
    t.degrees  # raises early for a type that is not SH-aligned

    def sample(generator: torch.Generator) -> Tensor:
        R = random_rotation(generator=generator, dtype=torch.float64)
        return t.rotation_action(R, wigner_D)

    sample.__name__ = f"rotation_action({t})"
    return sample


def _resolve_action(
    action: ActionName | Action, in_type: SpectralType, out_type: SpectralType | None
) -> tuple[Action, str]:
    if callable(action):
        return action, getattr(action, "__name__", repr(action))
    if out_type is not None and out_type.dim != in_type.dim:
        raise ValueError(
            f"the built-in action {action!r} uses one matrix for input and output, so it needs "
            f"out_type == in_type (got {in_type} -> {out_type}); pass a callable returning "
            f"(g_in, g_out) instead"
        )
    if out_type is not None and action != "orthogonal" and out_type != in_type:
        raise ValueError(
            f"action {action!r} needs out_type == in_type, got {in_type} -> {out_type}"
        )
    if action == "block":
        return block_action(in_type), f"block-orthogonal ({in_type})"
    if action == "block_special":
        return block_action(in_type, special=True), f"block-special-orthogonal ({in_type})"
    if action == "orthogonal":
        return orthogonal_action(in_type.dim), f"O({in_type.dim})"
    raise ValueError(
        f"unknown action {action!r}; use 'block', 'block_special', 'orthogonal' or a callable"
    )


def _act(g: Tensor, x: Tensor) -> Tensor:
    """Apply g (K, K) to the K axis of x (..., K, C)."""
    return torch.einsum("ij,...jc->...ic", g, x)


def assert_equivariant(
    module: nn.Module | Callable[[Tensor], Tensor],
    in_type: SpectralType | str,
    out_type: SpectralType | str | None = None,
    *,
    in_channels: int | None = None,
    batch_size: int = 2,
    n_samples: int = 3,
    atol: float = 1e-9,
    action: ActionName | Action = "block",
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    seed: int = 0,
    perturb_params: float = 0.0,
) -> float:
    """Check ``f(g·x) == g·f(x)`` (or ``f(g·x) == f(x)``) for random group elements g.

    Parameters
    ----------
    module : nn.Module or callable
        Maps (B, K, C_in) to (B, K_out, C_out), or to any shape if invariant. Modules are
        deep-copied, cast to ``dtype`` and put in eval mode; the original is untouched.
    in_type : SpectralType
        Type of the input K axis.
    out_type : SpectralType, optional
        Type of the output K axis (second-to-last); ``None`` means the output must be invariant.
    in_channels : int, optional
        C_in; defaults to ``module.in_channels``.
    batch_size, n_samples : int
        Inputs per group element, and number of group elements.
    atol : float
        Largest allowed absolute deviation.
    action : {'block', 'block_special', 'orthogonal'} or callable
        'block': Haar on O(d) per block; 'block_special': SO(d) per block (1-dim blocks fixed);
        'orthogonal': the whole O(K). A callable ``action(generator)`` returns g, or
        ``(g_in, g_out)`` when input and output types differ (e.g. Wigner-D, see
        :func:`rotation_action`).
    dtype : torch.dtype
        Precision of the check.
    generator, seed
        Random source; a fresh generator seeded with ``seed`` by default.
    perturb_params : float
        If > 0, add N(0, perturb_params²) noise to every parameter of the copy first, so that
        zero-initialised biases or gates cannot hide a broken symmetry. Leave at 0 for
        modules whose equivariance relies on particular parameter values.

    Returns
    -------
    float
        The largest deviation seen.

    Raises
    ------
    AssertionError
        Naming the module, the action and the error, when it exceeds ``atol``.
    """
    in_type = SpectralType(in_type)
    out_type = SpectralType(out_type) if out_type is not None else None
    sample_g, action_name = _resolve_action(action, in_type, out_type)
    if isinstance(module, nn.Module):
        name = type(module).__name__
    else:
        name = getattr(module, "__name__", "f")
    if in_channels is None:
        in_channels = getattr(module, "in_channels", None)
        if in_channels is None:
            raise ValueError(f"{name} has no `in_channels`; pass in_channels=")

    device = torch.device("cpu")
    if isinstance(module, nn.Module):
        p = next(module.parameters(), None)
        if p is None:
            p = next(module.buffers(), None)
        if p is not None:
            device = p.device
        f = copy.deepcopy(module).to(dtype=dtype).eval()
    else:
        f = module
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    if perturb_params > 0:
        if not isinstance(f, nn.Module):
            raise ValueError("perturb_params needs an nn.Module")
        with torch.no_grad():
            for p_ in f.parameters():
                noise = torch.randn(p_.shape, generator=generator, dtype=p_.dtype)
                p_.add_(perturb_params * noise.to(p_.device))

    kind = "invariant" if out_type is None else "equivariant"
    worst, scale = 0.0, 0.0
    with torch.no_grad():
        for i in range(n_samples):
            g = sample_g(generator)
            g_in, g_out = g if isinstance(g, tuple) else (g, g)
            g_in = g_in.to(dtype=dtype, device=device)
            g_out = g_out.to(dtype=dtype, device=device)
            x = in_type.randn(batch_size, -1, in_channels, generator=generator, dtype=dtype)
            x = x.to(device)
            fx = f(x)
            fgx = f(_act(g_in, x))
            if out_type is None:
                target = fx
            else:
                if fx.dim() < 2 or fx.shape[-2] != out_type.dim:
                    raise ValueError(
                        f"{name} output has shape {tuple(fx.shape)}; expected "
                        f"(..., K={out_type.dim}, C) for out_type {out_type}"
                    )
                target = _act(g_out, fx)
            if fgx.shape != target.shape:
                raise AssertionError(
                    f"{name}: output shapes differ, f(g·x) {tuple(fgx.shape)} "
                    f"vs {tuple(target.shape)}"
                )
            err = (fgx - target).abs().max().item() if fgx.numel() else 0.0
            scale = max(scale, fx.abs().max().item() if fx.numel() else 0.0)
            log.debug("%s: sample %d, %s error %.3e under %s", name, i, kind, err, action_name)
            if not err <= atol:  # also catches NaN
                msg = (
                    f"{name} is not {kind} under the {action_name} action: "
                    f"max |f(g·x) - {'f(x)' if out_type is None else 'g·f(x)'}| = {err:.3e} > "
                    f"atol = {atol:.1e} (sample {i + 1} of {n_samples}, max |f(x)| = {scale:.3e})"
                )
                log.error(msg)
                raise AssertionError(msg)
            worst = max(worst, err)
    if scale == 0.0:
        log.warning("%s returned all zeros: the %s check is vacuous", name, kind)
    log.info("%s is %s under %s: max error %.3e", name, kind, action_name, worst)
    return worst


class EquivariantModule(nn.Module):
    """Base of the typed layers: carries ``in_type`` / ``out_type`` and can check itself.

    ``out_type is None`` marks an invariant output.
    """

    in_type: SpectralType
    out_type: SpectralType | None

    def check_equivariance(self, **kwargs: object) -> float:
        """:func:`assert_equivariant` on this module with its own types; returns the error."""
        return assert_equivariant(
            self, self.in_type, self.out_type, **kwargs  # type: ignore[arg-type]
        )
