"""``SpectralType``: the block structure of latent spectral coefficients.

Latent coefficients have the flat layout ``(..., K, C)``: the K axis indexes the learned
eigenfunctions (sorted by eigenvalue) and carries the representation, C is the channel axis.
A ``SpectralType`` says how the K axis splits into eigenspace blocks, the way e3nn's
``Irreps`` describes a feature vector. An isometry of the domain that commutes with the
operator acts on the coefficients by a block-diagonal orthogonal matrix, one block per
eigenspace.

String form: ``"1x[1]+3x[2]+5x[1]"`` is *multiplicity* x [*block dimension*]: one 1-dim block,
then three 2-dim blocks, then five 1-dim blocks (K = 1 + 6 + 5 = 12); ``"[3]"`` means ``"1x[3]"``.
The brackets keep it apart from e3nn's irreps, where ``"3x1o"`` is three vectors (*degree* 1,
dim 3 each). The bracket-free form of earlier versions (``"1x1+3x2"``, ``"3"``) is still read — e3nn
never accepts it, so it cannot be an irreps string — but ``str`` writes brackets. Strings with a
parity letter (``"1x0e"``) are refused with a pointer to :meth:`SpectralType.from_irreps`; e3nn
interop is :meth:`SpectralType.from_irreps` / :meth:`SpectralType.to_irreps`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SpectralTerm",
    "SpectralType",
    "block_diag",
    "random_orthogonal",
    "random_rotation",
]

_TERM_RE = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(?:\[\s*(\d+)\s*\]|(\d+))\s*$")
_IRREP_TERM_RE = re.compile(r"^\s*(?:\d+\s*x\s*)?\d+\s*[eoy]\s*$")  # e3nn: "3x1o", "0e"

Parity = int | str

WignerD = Callable[[int, Tensor], Tensor]
"""``wigner_D(l, R) -> (..., 2l+1, 2l+1)``: degree-l rotation matrix for rotations R (..., 3, 3)."""


class SpectralTerm(NamedTuple):
    """``mul`` consecutive blocks, each of dimension ``dim``."""

    mul: int
    dim: int

    def __str__(self) -> str:
        return f"{self.mul}x[{self.dim}]"


def _as_size(size: Sequence[int] | int | None) -> tuple[int, ...]:
    if size is None:
        return ()
    if isinstance(size, int):
        return (size,)
    return tuple(int(s) for s in size)


def _gaussian(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> Tensor:
    """Standard normal samples; drawn on the generator's device, then moved."""
    gen_device = generator.device if generator is not None else device
    x = torch.randn(shape, generator=generator, dtype=dtype, device=gen_device)
    return x.to(device=device) if device is not None else x


def random_orthogonal(
    dim: int,
    batch: Sequence[int] | int | None = None,
    *,
    special: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Haar-distributed orthogonal matrices.

    QR of a Gaussian matrix with the sign of diag(R) moved into Q (Mezzadri 2007), so the
    distribution is exactly Haar on O(dim); with ``special=True`` the first column of every
    matrix with determinant −1 is negated, which gives Haar on SO(dim).

    Parameters
    ----------
    dim : int
        Matrix size d.
    batch : int or tuple of int, optional
        Leading batch shape.
    special : bool
        Sample from SO(d) instead of O(d).
    generator, dtype, device
        Random source and output placement (default dtype: torch's default).

    Returns
    -------
    Tensor, shape (*batch, d, d)
    """
    dtype = dtype or torch.get_default_dtype()
    shape = _as_size(batch) + (dim, dim)
    # QR in float64 for accuracy, cast at the end.
    a = _gaussian(shape, generator, torch.float64, None)
    q, r = torch.linalg.qr(a)
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    sign = torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))
    q = q * sign.unsqueeze(-2)
    if special and dim > 0:
        det = torch.linalg.det(q)
        q = q.clone()
        q[..., :, 0] = q[..., :, 0] * torch.where(det < 0, -1.0, 1.0).to(q).unsqueeze(-1)
    return q.to(dtype=dtype, device=device)


def random_rotation(
    batch: Sequence[int] | int | None = None,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniformly (Haar) distributed rotations of R³, shape (*batch, 3, 3)."""
    return random_orthogonal(
        3, batch, special=True, generator=generator, dtype=dtype, device=device
    )


def block_diag(blocks: Sequence[Tensor]) -> Tensor:
    """Batched block-diagonal matrix.

    Parameters
    ----------
    blocks : sequence of Tensor, shapes (*batch, d_i, d_i)
        Square blocks with broadcastable batch shapes.

    Returns
    -------
    Tensor, shape (*batch, sum d_i, sum d_i)
    """
    if len(blocks) == 0:
        raise ValueError("block_diag needs at least one block")
    batch = torch.broadcast_shapes(*(b.shape[:-2] for b in blocks))
    dtype = blocks[0].dtype
    device = blocks[0].device
    k = sum(b.shape[-1] for b in blocks)
    out = torch.zeros(batch + (k, k), dtype=dtype, device=device)
    i = 0
    for b in blocks:
        d = b.shape[-1]
        out[..., i : i + d, i : i + d] = b
        i += d
    return out


class SpectralType:
    """Immutable direct-sum description of the K axis of ``(..., K, C)`` coefficients.

    Parameters
    ----------
    spec : str, SpectralType or iterable of (mul, dim) pairs
        ``"1x[1]+3x[2]+5x[1]"``; ``""`` or ``None`` gives the empty type.

    Examples
    --------
    >>> t = SpectralType("1x[1]+3x[2]+5x[1]")
    >>> t.dim, t.num_blocks, t.blocks
    (12, 9, (1, 2, 2, 2, 1, 1, 1, 1, 1))
    >>> SpectralType.sphere(2)
    SpectralType('1x[1]+1x[3]+1x[5]')
    >>> SpectralType.from_evals([0.0, 2.0, 2.0, 2.0, 6.0]) == SpectralType("1x[1]+1x[3]+1x[1]")
    True
    >>> SpectralType.from_irreps("2x0e+3x1o")
    SpectralType('2x[1]+3x[3]')
    """

    __slots__ = ("_terms", "_blocks", "_hash")

    def __init__(self, spec: str | SpectralType | Iterable[tuple[int, int]] | None = None) -> None:
        if spec is None:
            terms: tuple[SpectralTerm, ...] = ()
        elif isinstance(spec, SpectralType):
            terms = spec._terms
        elif isinstance(spec, str):
            terms = self._parse(spec)
        else:
            terms = tuple(self._term(t) for t in spec)
        object.__setattr__(self, "_terms", terms)
        object.__setattr__(self, "_blocks", tuple(t.dim for t in terms for _ in range(t.mul)))
        object.__setattr__(self, "_hash", hash(terms))

    # -- construction -------------------------------------------------------------------
    @staticmethod
    def _term(t: Any) -> SpectralTerm:
        try:
            mul, dim = (int(v) for v in t)
        except (TypeError, ValueError) as e:
            raise TypeError(f"a SpectralType term must be a (mul, dim) pair, got {t!r}") from e
        if mul < 0 or dim < 1:
            raise ValueError(f"need mul >= 0 and dim >= 1 in a SpectralType term, got {t!r}")
        return SpectralTerm(mul, dim)

    @classmethod
    def _parse(cls, s: str) -> tuple[SpectralTerm, ...]:
        if s.strip() == "":
            return ()
        terms = []
        for part in s.split("+"):
            if _IRREP_TERM_RE.match(part):
                raise ValueError(
                    f"SpectralType term {part!r} in {s!r} is written like e3nn irreps (MULx<degree><parity>, "
                    f"where '3x1o' is three 3-dim vectors); a SpectralType string gives block dimensions in "
                    f"brackets ('3x[3]' is three 3-dim blocks). Use SpectralType.from_irreps({s!r}) to convert"
                )
            m = _TERM_RE.match(part)
            if m is None:
                raise ValueError(
                    f"cannot parse SpectralType term {part!r} in {s!r}; "
                    f"expected 'MULx[DIM]' (MUL blocks of dimension DIM), e.g. '3x[2]'"
                )
            mul = int(m.group(1)) if m.group(1) is not None else 1
            dim = m.group(2) if m.group(2) is not None else m.group(3)
            terms.append(cls._term((mul, int(dim))))
        return tuple(terms)

    @classmethod
    def from_block_sizes(cls, sizes: Iterable[int]) -> SpectralType:
        """Type with the given block dimensions in order; equal neighbours share a term.

        ``from_block_sizes([1, 3, 3, 1])`` is ``"1x[1]+2x[3]+1x[1]"``.
        """
        terms: list[list[int]] = []
        for d in sizes:
            d = int(d)
            if terms and terms[-1][1] == d:
                terms[-1][0] += 1
            else:
                terms.append([1, d])
        return cls([(m, d) for m, d in terms])

    @classmethod
    def sphere(cls, lmax: int) -> SpectralType:
        """Real spherical harmonics of degree 0..lmax: blocks 1, 3, 5, ..., 2·lmax+1."""
        if lmax < 0:
            raise ValueError(f"lmax must be >= 0, got {lmax}")
        return cls([(1, 2 * l + 1) for l in range(lmax + 1)])

    @classmethod
    def from_irreps(cls, irreps: Any) -> SpectralType:
        """The block structure of e3nn irreps: each ``MUL x (l, p)`` term gives MUL blocks of dim 2l+1.

        Terms stay one-to-one (not simplified) so that :meth:`to_irreps` with the same parities
        gives the irreps back; the parities themselves are not part of a SpectralType.

        Parameters
        ----------
        irreps : e3nn.o3.Irreps, str (``"2x0e+3x1o"``) or anything ``o3.Irreps`` accepts

        Examples
        --------
        >>> SpectralType.from_irreps("1x0e+3x1o+1x2e")
        SpectralType('1x[1]+3x[3]+1x[5]')
        """
        # e3nn is imported here, not at module top: only the interop needs it (a leaf use)
        from e3nn import o3

        try:
            parsed = o3.Irreps(irreps)
        except Exception as exc:  # e3nn raises ValueError / AssertionError on bad strings
            raise ValueError(f"cannot read {irreps!r} as e3nn irreps ({exc})") from exc
        return cls([(mul, ir.dim) for mul, ir in parsed])

    def to_irreps(self, parity: Parity | Sequence[Parity] = "sh") -> Any:
        """e3nn irreps with the same layout: the term ``MULx[2l+1]`` becomes ``MUL x l`` + parity.

        Parameters
        ----------
        parity : "sh", "e", "o", 1, -1, or one of those per term
            "sh" (default): (−1)^l, the parity of spherical harmonics (``o3.Irreps.spherical_harmonics``);
            "e" / 1: even; "o" / -1: odd; a sequence gives each term's parity (exact round trips of
            :meth:`from_irreps`).

        Returns
        -------
        e3nn.o3.Irreps of dimension ``self.dim``

        Raises
        ------
        ValueError
            If a block has even dimension (no degree l with 2l+1 = dim), or the parities do not match
            the terms.
        """
        # e3nn is imported here, not at module top: only the interop needs it (a leaf use)
        from e3nn import o3

        even = [t for t in self._terms if t.dim % 2 == 0]
        if even:
            raise ValueError(
                f"{self} has blocks of even dimension ({even[0]}): e3nn irreps have dimension 2l+1"
            )
        if isinstance(parity, (str, int)):
            parities = [parity] * len(self._terms)
        else:
            parities = list(parity)
            if len(parities) != len(self._terms):
                raise ValueError(
                    f"got {len(parities)} parities for the {len(self._terms)} terms of {self}"
                )
        out = []
        for term, p in zip(self._terms, parities):
            l = (term.dim - 1) // 2
            out.append((term.mul, (l, _parity_sign(p, l))))
        return o3.Irreps(out)

    @classmethod
    def from_evals(
        cls,
        evals: Sequence[float] | np.ndarray | Tensor,
        *,
        rtol: float = 1e-5,
        atol: float = 1e-8,
        gap: float | None = None,
    ) -> SpectralType:
        """Blocks from the clusters of a sorted spectrum.

        Consecutive eigenvalues λ_i ≤ λ_{i+1} join the same block when
        ``λ_{i+1} − λ_i <= atol + rtol·max(|λ_i|, |λ_{i+1}|)`` (single linkage, so a block
        may drift across a slowly rising run of eigenvalues). For a learned spectrum, whose
        eigenvalues within an eigenspace are never exactly equal, pass the smallest gap that
        separates eigenspaces as ``gap``.

        Parameters
        ----------
        evals : array-like, shape (K,)
            Eigenvalues in the order of the coefficient axis; must be non-decreasing.
        rtol, atol : float
            Relative and absolute thresholds (defaults as ``numpy.isclose``: exact spectra).
        gap : float, optional
            Absolute threshold alone; shorthand for ``atol=gap, rtol=0``.
        """
        if gap is not None:
            if gap < 0:
                raise ValueError(f"gap must be >= 0, got {gap}")
            atol, rtol = float(gap), 0.0
        if isinstance(evals, Tensor):
            ev = evals.detach().to("cpu", torch.float64).numpy()
        else:
            ev = np.asarray(evals, dtype=np.float64)
        if ev.ndim != 1:
            raise ValueError(f"evals must be 1-D, got shape {ev.shape}")
        if not np.all(np.isfinite(ev)):
            raise ValueError("evals contain NaN or inf")
        if ev.size == 0:
            return cls()
        gaps = np.diff(ev)
        if np.any(gaps < 0):
            i = int(np.argmax(gaps < 0))
            raise ValueError(
                f"evals must be sorted ascending (the K axis is ordered by eigenvalue), but "
                f"evals[{i}]={ev[i]:.6g} > evals[{i + 1}]={ev[i + 1]:.6g}; permute the basis "
                f"with argsort first"
            )
        scale = np.maximum(np.abs(ev[:-1]), np.abs(ev[1:]))
        joined = gaps <= atol + rtol * scale
        sizes = [1]
        for j in joined:
            if j:
                sizes[-1] += 1
            else:
                sizes.append(1)
        return cls.from_block_sizes(sizes)

    # -- descriptors --------------------------------------------------------------------
    @property
    def terms(self) -> tuple[SpectralTerm, ...]:
        """The (mul, dim) terms as written."""
        return self._terms

    @property
    def blocks(self) -> tuple[int, ...]:
        """Dimension of every block, multiplicities expanded."""
        return self._blocks

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    @property
    def dim(self) -> int:
        """K = total dimension."""
        return sum(self._blocks)

    def slices(self) -> list[slice]:
        """One slice of the K axis per block (multiplicities expanded)."""
        out, i = [], 0
        for d in self._blocks:
            out.append(slice(i, i + d))
            i += d
        return out

    def term_slices(self) -> list[slice]:
        """One slice of the K axis per term (``mul`` blocks of dim ``dim`` each)."""
        out, i = [], 0
        for t in self._terms:
            out.append(slice(i, i + t.mul * t.dim))
            i += t.mul * t.dim
        return out

    def block_index(self, device: torch.device | str | None = None) -> Tensor:
        """Block id of every row of the K axis, int64 of shape (K,)."""
        sizes = torch.tensor(self._blocks, dtype=torch.long)
        ids = torch.repeat_interleave(torch.arange(len(self._blocks)), sizes)
        return ids.to(device) if device is not None else ids

    @property
    def degrees(self) -> tuple[int, ...]:
        """Degree l of every block, for SH-aligned types (all blocks of odd dim 2l+1)."""
        if any(d % 2 == 0 for d in self._blocks):
            raise ValueError(f"{self} has an even-dimensional block, so it is not SH-aligned")
        return tuple((d - 1) // 2 for d in self._blocks)

    @property
    def is_sphere_aligned(self) -> bool:
        """True when every block has odd dimension 2l+1 (a real SH degree)."""
        return all(d % 2 == 1 for d in self._blocks)

    def simplify(self) -> SpectralType:
        """Drop empty terms and merge neighbouring terms of equal block dimension."""
        return SpectralType.from_block_sizes(self._blocks)

    # -- sampling -----------------------------------------------------------------------
    def randn(
        self,
        *size: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Standard normal tensor with ``-1`` in ``size`` replaced by K.

        ``SpectralType("2x[3]").randn(8, -1, 16)`` has shape (8, 6, 16).
        """
        if sum(1 for s in size if s == -1) != 1:
            raise ValueError(f"size must contain exactly one -1 placeholder for K, got {size}")
        shape = tuple(self.dim if s == -1 else int(s) for s in size)
        return _gaussian(shape, generator, dtype or torch.get_default_dtype(), device)

    def random_isometry(
        self,
        batch: Sequence[int] | int | None = None,
        *,
        special: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Block-diagonal orthogonal matrices, Haar on every block independently.

        With ``special=False`` each d-block is Haar on O(d), so 1-dim blocks get a random sign;
        with ``special=True`` each is Haar on SO(d) and 1-dim blocks are fixed to +1.

        Returns
        -------
        Tensor, shape (*batch, K, K)
        """
        batch_shape = _as_size(batch)
        dtype = dtype or torch.get_default_dtype()
        k = self.dim
        out = torch.zeros(batch_shape + (k, k), dtype=torch.float64)
        for term, sl in zip(self._terms, self.term_slices()):
            if term.mul == 0:
                continue
            q = random_orthogonal(
                term.dim, batch_shape + (term.mul,), special=special, generator=generator,
                dtype=torch.float64,
            )
            for j in range(term.mul):
                a = sl.start + j * term.dim
                out[..., a : a + term.dim, a : a + term.dim] = q[..., j, :, :]
        return out.to(dtype=dtype, device=device)

    def rotation_action(self, R: Tensor, wigner_D: WignerD) -> Tensor:
        """Block-diagonal Wigner-D matrix of rotations R on an SH-aligned type.

        Parameters
        ----------
        R : Tensor, shape (..., 3, 3)
            Rotation matrices.
        wigner_D : callable
            ``wigner_D(l, R) -> (..., 2l+1, 2l+1)`` acting on the real SH basis of the
            coefficients (``Y(R x) = D(R) Y(x)``). Callables that only accept one (3, 3)
            rotation are looped over the batch.

        Returns
        -------
        Tensor, shape (..., K, K), dtype and device of R
        """
        if R.shape[-2:] != (3, 3):
            raise ValueError(f"R must have shape (..., 3, 3), got {tuple(R.shape)}")
        cache: dict[int, Tensor] = {}
        for l in set(self.degrees):
            cache[l] = self._wigner_batched(l, R, wigner_D)
        return block_diag([cache[l] for l in self.degrees])

    @staticmethod
    def _wigner_batched(l: int, R: Tensor, wigner_D: WignerD) -> Tensor:
        d = 2 * l + 1
        batch = R.shape[:-2]
        D = torch.as_tensor(wigner_D(l, R))
        if D.shape == batch + (d, d):
            return D.to(dtype=R.dtype, device=R.device)
        if len(batch) == 0:
            raise ValueError(
                f"wigner_D({l}, R) returned shape {tuple(D.shape)}, expected ({d}, {d})"
            )
        flat = R.reshape(-1, 3, 3)
        Ds = [torch.as_tensor(wigner_D(l, r)) for r in flat]
        return torch.stack(Ds).reshape(batch + (d, d)).to(dtype=R.dtype, device=R.device)

    def random_rotation_action(
        self,
        wigner_D: WignerD,
        batch: Sequence[int] | int | None = None,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """A Haar-random rotation R and its block-diagonal Wigner-D action.

        Returns
        -------
        D : Tensor, shape (*batch, K, K)
        R : Tensor, shape (*batch, 3, 3)
        """
        R = random_rotation(batch, generator=generator, dtype=dtype, device=device)
        return self.rotation_action(R, wigner_D), R

    # -- container protocol -------------------------------------------------------------
    def __iter__(self) -> Iterator[SpectralTerm]:
        return iter(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def __getitem__(self, i: int | slice) -> SpectralTerm | SpectralType:
        if isinstance(i, slice):
            return SpectralType(self._terms[i])
        return self._terms[i]

    def __add__(self, other: SpectralType | str) -> SpectralType:
        return SpectralType(self._terms + SpectralType(other)._terms)

    def __radd__(self, other: str) -> SpectralType:
        return SpectralType(other) + self

    def __mul__(self, n: int) -> SpectralType:
        """Repeat the whole type n times (as a direct sum)."""
        if not isinstance(n, int):
            return NotImplemented
        return SpectralType(self._terms * n)

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpectralType):
            return NotImplemented
        return self._terms == other._terms

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SpectralType is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (SpectralType, (str(self),))

    def __str__(self) -> str:
        return "+".join(str(t) for t in self._terms)

    def __repr__(self) -> str:
        return f"SpectralType({str(self)!r})"


def _parity_sign(p: Parity, l: int) -> int:
    """+1 / −1 for a parity given as "sh" ((−1)^l), "e", "o", 1 or −1."""
    if p == "sh":
        return (-1) ** l
    table = {"e": 1, "o": -1, 1: 1, -1: -1}
    if isinstance(p, bool) or p not in table:
        raise ValueError(f"parity must be 'sh', 'e', 'o', 1 or -1, got {p!r}")
    return table[p]


def _check_dim(x: Tensor, t: SpectralType, what: str = "input") -> None:
    """Raise ValueError unless x has shape (..., t.dim, C)."""
    if x.dim() < 2 or x.shape[-2] != t.dim:
        raise ValueError(
            f"{what} must have shape (..., K={t.dim}, C) for type {t}, got {tuple(x.shape)}"
        )
