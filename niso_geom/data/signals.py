"""Signals on domains and their transformed copies, for learning operators from pairs (x, Tx).

* Torus: periodic random fields whose Fourier amplitude falls as 1/|f|^α (a natural-image
  power law), optionally band-limited, and real MNIST digits resized to the grid; pairs by
  circular shifts (exact).
* Sphere grids and sphere-like meshes: random fields in real spherical harmonics with
  per-degree power ∝ (l+1)^(−α) up to a band limit, evaluated at the points; pairs by
  rotations applied exactly to the coefficients (Wigner-D), so the transformed signal is
  the true f(Rᵀp) at every point, for any grid; and MNIST digits placed on the sphere,
  rotated by resampling.

``sample(batch, rng)`` is NumPy and deterministic given a ``numpy.random.Generator`` (evaluation
pairs, second moments). ``sample_torch(batch, generator)`` draws the same distribution in torch
float32 for training streams, at a few percent of a step (``docs/performance.md``): torus fields
by the filter's circulant matrix (or a real FFT) on torch noise, shifts as one gather; sphere coefficients in torch, rotations as
Wigner-D matmuls with a cached quadrature. Signals have the flat layout (B, N, C).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import torch

from niso_geom.domains.sphere import SphereGrid
from niso_geom.domains.torus import TorusGrid
from niso_geom.harmonics.sphere import real_sph_harm, sh_degrees
from niso_geom.harmonics.wigner import random_rotation, rotation_from_quaternions, wigner_D_all


def torus_amplitude(h: int, w: int, alpha: float = 1.0, bandlimit: float | None = None) -> np.ndarray:
    """The filter of :func:`torus_random_fields`: |f|^(−α) on the FFT grid (h, w), 0 at f = 0 and
    beyond ``bandlimit``."""
    fy = np.fft.fftfreq(h) * h
    fx = np.fft.fftfreq(w) * w
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    amp = np.where(r > 0, np.maximum(r, 1e-12) ** (-alpha), 0.0)
    if bandlimit is not None:
        amp = np.where(r <= bandlimit, amp, 0.0)
    return amp


def torus_filter_matrix(amp: torch.Tensor) -> torch.Tensor:
    """The filter ``amp`` (h, w) of :func:`torus_random_fields` as a circulant matrix F (N, N), N = h·w:
    fields ``F z`` of white noise z (..., N, C) are ``ifft2(amp · fft2(z))`` (F is symmetric)."""
    h, w = amp.shape
    kernel = torch.fft.irfft2(amp[:, : w // 2 + 1], s=(h, w)).flatten()
    idx = torch.arange(h * w)
    rows, cols = idx // w, idx % w
    return kernel[((rows[:, None] - rows[None]) % h) * w + (cols[:, None] - cols[None]) % w].contiguous()


def normalize_fields(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Zero mean, unit (population) std along ``dim``, as :func:`torus_random_fields`."""
    x = x - x.mean(dim, keepdim=True)  # 0 up to rounding already (no f = 0 term)
    return x * (x.square().mean(dim, keepdim=True).sqrt() + 1e-12).reciprocal()


def torus_fields_from_noise(noise: torch.Tensor, amp: torch.Tensor) -> torch.Tensor:
    """Unit-std periodic fields from white noise (..., h, w), filtered by ``amp`` (h, w) (symmetric
    under f → −f, so the field is real): the same linear map as :func:`torus_random_fields`, by a
    real FFT (half the spectrum). Returns (..., h·w), noise's dtype."""
    h, w = noise.shape[-2:]
    x = torch.fft.irfft2(torch.fft.rfft2(noise) * amp[:, : w // 2 + 1], s=(h, w)).flatten(-2)
    return normalize_fields(x, -1)


def torus_random_fields(h: int, w: int, n: int, rng: np.random.Generator, *, alpha: float = 1.0,
                        bandlimit: float | None = None) -> np.ndarray:
    """Periodic random fields (n, h·w) with amplitude ∝ |f|^(−α) (zero mean, unit std).

    ``bandlimit`` keeps frequencies with |f| ≤ bandlimit cycles per side (None: all).
    """
    amp = torus_amplitude(h, w, alpha, bandlimit)
    noise = np.fft.fft2(rng.standard_normal((n, h, w)))
    x = np.real(np.fft.ifft2(noise * amp[None]))
    x /= x.reshape(n, -1).std(axis=1)[:, None, None] + 1e-12
    return x.reshape(n, h * w)


def resize_images(images: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area-average (box) resize of (n, H, W) images to (n, h, w) (bilinear when enlarging)."""
    _, H, W = images.shape
    if (H, W) == (h, w):
        return images.astype(np.float64)
    return np.stack([ndi.zoom(im.astype(np.float64), (h / H, w / W), order=1, grid_mode=True, mode="grid-constant")
                     for im in images])


@dataclass
class TorusPairs:
    """Pairs of torus signals related by random circular shifts (one shift per sample).

    Signals are power-law random fields, or (with ``images`` (M, H, W), e.g. MNIST) digits resized
    to the grid and scaled to [−1, 1], one drawn per channel. The shifts are the torus's group:
    drawn by :meth:`TorusGrid.sample_transform` and applied by :meth:`TorusGrid.shift_grid` of
    :attr:`grid`.
    """

    h: int
    w: int
    channels: int
    alpha: float = 1.0
    bandlimit: float | None = None
    images: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.grid = TorusGrid(self.h, self.w)
        self._amp = torch.from_numpy(torus_amplitude(self.h, self.w, self.alpha, self.bandlimit)).float()
        idx = torch.arange(self.h * self.w)
        self._rows, self._cols = idx // self.w, idx % self.w
        # up to 32×32 the filter as one (N, N) matmul beats batched small FFTs (24× at 8×8, 1.7× at 16×16)
        self._filter = torus_filter_matrix(self._amp) if self.h * self.w <= 1024 else None
        if self.images is not None:
            self._bank = 2.0 * resize_images(self.images, self.h, self.w) - 1.0
            self._bank_t = torch.from_numpy(self._bank.reshape(len(self._bank), -1)).float()

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x (B, N, C), Tx (B, N, C), shifts (B, 2)."""
        if self.images is None:
            x = torus_random_fields(self.h, self.w, batch * self.channels, rng, alpha=self.alpha,
                                    bandlimit=self.bandlimit)
        else:
            x = self._bank[rng.integers(len(self._bank), size=batch * self.channels)].reshape(batch * self.channels, -1)
        x = x.reshape(batch, self.channels, self.h, self.w)
        shifts = self.grid.sample_transform(rng, size=batch)
        tx = np.stack([self.grid.shift_grid(x[b], *shifts[b]) for b in range(batch)])
        flat = lambda a: a.reshape(batch, self.channels, -1).transpose(0, 2, 1)
        return flat(x), flat(tx), shifts

    def sample_torch(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The distribution of :meth:`sample` in torch float32: x (B, N, C), Tx (B, N, C), shifts (B, 2).

        White noise from ``generator`` filtered by the circulant matrix of the filter (grids up to 32×32)
        or a real FFT (random fields), or digits from the bank; the shift Tx[i, j] = x[i − di, j − dj]
        (as :meth:`TorusGrid.shift_grid`) is one gather.
        """
        c, n = self.channels, self.h * self.w
        if self.images is None and self._filter is not None:
            x = normalize_fields(self._filter @ torch.randn(batch, n, c, generator=generator), 1)  # (B, N, C)
        elif self.images is None:
            noise = torch.randn(batch, c, self.h, self.w, generator=generator)
            x = torus_fields_from_noise(noise, self._amp).transpose(1, 2).contiguous()
        else:
            pick = torch.randint(len(self._bank_t), (batch * c,), generator=generator)
            x = self._bank_t[pick].reshape(batch, c, n).transpose(1, 2).contiguous()
        shifts = torch.stack([torch.randint(self.h, (batch,), generator=generator),
                              torch.randint(self.w, (batch,), generator=generator)], 1)
        src = (((self._rows - shifts[:, :1]) % self.h) * self.w + (self._cols - shifts[:, 1:]) % self.w)  # (B, N)
        tx = x[torch.arange(batch).unsqueeze(1), src]
        return x, tx, shifts


def sh_power(lmax: int, alpha: float) -> np.ndarray:
    """Per-coefficient variance ∝ (l+1)^(−α), normalized to unit mean signal power."""
    var = (sh_degrees(lmax) + 1.0) ** (-alpha)
    return var / var.sum() * 4 * np.pi


def block_wigner(lmax: int, R: np.ndarray) -> np.ndarray:
    """Block-diagonal real Wigner-D of degrees ≤ lmax: (..., 3, 3) → (..., (L+1)², (L+1)²)."""
    return wigner_D_all(lmax, R)


@dataclass
class SpherePairs:
    """Pairs of signals at points on the unit sphere related by random (Haar) rotations.

    With ``source="random"``: f = Σ c_lm Y_lm, c ~ N(0, (l+1)^−α) up to ``lmax``; Tf = f(Rᵀ·)
    is evaluated exactly through D(R) c. With ``images`` (M, H, W): each channel is a digit
    painted on an equirectangular patch and sampled (bilinearly) at p and at Rᵀp.
    ``points`` are unit vectors (N, 3): a SphereGrid's points or a sphere-like mesh's
    normalized vertices.
    """

    points: np.ndarray
    channels: int
    lmax: int = 10
    alpha: float = 1.0
    images: np.ndarray | None = None
    image_res: tuple[int, int] = (64, 128)

    def __post_init__(self) -> None:
        p = np.asarray(self.points, dtype=np.float64)
        self.points = p / np.linalg.norm(p, axis=1, keepdims=True)
        if self.images is None:
            self._Y = real_sph_harm(self.lmax, self.points)  # (N, (L+1)²)
            self._std = np.sqrt(sh_power(self.lmax, self.alpha))
            self._Y_t = torch.from_numpy(self._Y).float()
            self._std_t = torch.from_numpy(self._std).float()
        else:
            self._canvas = SphereGrid.equiangular(self.image_res[0], self.image_res[1], poles=False)
            self._bank = resize_images(self.images, self.image_res[0] // 2, self.image_res[0] // 2)

    def _paint(self, digit: np.ndarray) -> np.ndarray:
        H, W = self.image_res
        canvas = -np.ones((H, W))
        h = digit.shape[0]
        r0, c0 = (H - h) // 2, (W - h) // 2
        canvas[r0:r0 + h, c0:c0 + h] = 2.0 * digit - 1.0
        return canvas.reshape(-1)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x (B, N, C), Tx (B, N, C), rotations (B, 3, 3)."""
        Rs = random_rotation(rng, size=batch)
        if self.images is None:
            c = rng.standard_normal((batch, self._Y.shape[1], self.channels)) * self._std[None, :, None]
            Dc = block_wigner(self.lmax, Rs) @ c
            return self._Y @ c, self._Y @ Dc, Rs
        xs, txs = [], []
        for b in range(batch):
            cols = []
            for _ in range(self.channels):
                img = self._paint(self._bank[rng.integers(len(self._bank))])
                orient = random_rotation(rng)  # where on the sphere the digit sits
                cols.append((img, orient))
            src = np.stack([c[0] for c in cols], 1)  # (H·W, C) on the canvas
            base = np.stack([c[1] for c in cols])
            x = np.stack([self._canvas.interpolate(src[:, i], self.points @ base[i]) for i in range(self.channels)], 1)
            tp = self.points @ Rs[b]  # Rᵀp
            tx = np.stack([self._canvas.interpolate(src[:, i], tp @ base[i]) for i in range(self.channels)], 1)
            xs.append(x)
            txs.append(tx)
        return np.stack(xs), np.stack(txs), Rs

    def sample_torch(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The distribution of :meth:`sample` in torch float32: x (B, N, C), Tx (B, N, C), rotations (B, 3, 3)
        (float64). Random fields only (digits: ``sample``): coefficients and Haar quaternions from
        ``generator``, Tx = Y D(R) c exactly as in :meth:`sample`."""
        if self.images is not None:
            raise ValueError("sample_torch draws random fields; digits on the sphere are sampled by sample()")
        q = torch.randn(batch, 4, generator=generator, dtype=torch.float64)
        Rs = rotation_from_quaternions(q.numpy())
        c = torch.randn(batch, self._Y.shape[1], self.channels, generator=generator) * self._std_t[:, None]
        D = torch.from_numpy(block_wigner(self.lmax, Rs)).float()
        return self._Y_t @ c, self._Y_t @ (D @ c), torch.from_numpy(Rs)
