"""homNIST models: the autoencoder of a config, the classifier heads and their input features.

Two kinds (:data:`~.methods.KINDS`): ``"niso"`` — a :class:`NIsoAutoencoder` whose head is the
O(K)-invariant :class:`~niso_geom.equivariant.OrthNet` on the spectral coefficients
Φᵀ M E(x) (B, K, C); ``"ae"`` — a :class:`PlainAutoencoder` whose head is a
:class:`LatentCNN` on the grid latent E(x) (B, C, h, w). With ``head_train_kernel`` the NIso
head is a :class:`KernelHead`: it takes the latents E(x) (B, N, C) and projects them with the
operator it trains (the official classifier protocol). :func:`encoder_cost` gives the size of
a config's encoder (parameters, multiply-adds, receptive field).
"""

from __future__ import annotations

import torch
from torch import nn

from niso_geom.baselines.ae_aug import LatentCNN
from niso_geom.equivariant import OrthNet
from niso_geom.experiments.homnist.config import HEAD_NORMS, HomNISTConfig
from niso_geom.experiments.homnist.data import SIDE
from niso_geom.experiments.homnist.methods import KINDS
from niso_geom.niso.autoencoder import (
    LatentScaleNorm,
    NIsoAutoencoder,
    PlainAutoencoder,
    encode_coefficients,
)
from niso_geom.niso.models import (
    GridDecoder,
    GridEncoder,
    conv_macs,
    count_parameters,
    receptive_field,
    reference_init_,
)
from niso_geom.niso.operator import LearnedOperator, project

__all__ = ["NUM_CLASSES", "FeatureNoise", "KernelHead", "LatentCNN", "build_autoencoder", "build_head",
           "encode_features", "encoder_cost", "head_input"]

NUM_CLASSES = 10

Autoencoder = NIsoAutoencoder | PlainAutoencoder


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _encoder(cfg: HomNISTConfig) -> GridEncoder:
    return GridEncoder(1, cfg.enc_channels, cfg.enc_depth, cfg.latent_dim, "zero", lift=cfg.lift)


def _decoder(cfg: HomNISTConfig) -> GridDecoder:
    return GridDecoder(cfg.latent_dim, cfg.dec_channels, cfg.dec_depth, 1, "zero")


def build_autoencoder(cfg: HomNISTConfig, kind: str, alpha: float = 0.5, beta: float = 0.1) -> Autoencoder:
    """The encoder/decoder of ``cfg`` (zero padding, 40×40 -> 20×20×C), with an operator for NIso.

    ``cfg.init == "reference"`` re-initializes the encoder and decoder like the flax reference
    (:func:`~niso_geom.niso.models.reference_init_`; it draws from torch's global generator, after
    PyTorch's default init, so the operator's initial values are drawn after it).
    """
    _check_kind(kind)
    enc: nn.Module = _encoder(cfg)
    dec = _decoder(cfg)
    if cfg.init == "reference":
        reference_init_(enc)
        reference_init_(dec)
    h, w = enc.latent_shape(SIDE, SIDE)
    if cfg.latent_norm:
        enc = nn.Sequential(enc, LatentScaleNorm())
    if kind == "ae":
        return PlainAutoencoder(enc, dec, latent_shape=(h, w))
    op = LearnedOperator(h * w, cfg.k, eigenvalue_param=cfg.eigenvalue_param, spectral_dropout=cfg.spectral_dropout)
    return NIsoAutoencoder(enc, dec, op, alpha=alpha, beta=beta, latent_shape=(h, w))


class FeatureNoise(nn.Module):
    """Adds ``sigma · rms(x) · N(0, 1)`` to each sample in training mode (identity in eval mode).

    A regularizer for heads trained on clean digits only: it makes them tolerate the residual
    non-equivariance of the frozen encoder without showing them a single homography. The noise
    is isotropic, so an O(K)-invariant head stays O(K)-invariant in distribution.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"noise sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0:
            return x
        rms = x.detach().square().mean(dim=tuple(range(1, x.dim())), keepdim=True).sqrt()
        return x + self.sigma * rms * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


def encoder_cost(cfg: HomNISTConfig) -> dict[str, int]:
    """Size of ``cfg``'s encoder and decoder, without training or allocating weights.

    Returns ``encoder_parameters``, ``decoder_parameters``, ``encoder_macs`` and ``decoder_macs``
    (multiply-adds of the convolutions for one 40×40 image; FLOPs ≈ 2 × MACs, a training step
    ≈ 3 × the forward work) and ``receptive_field`` (side in pixels of what one latent cell sees).
    The paper's encoder: 1,083,552 parameters, ~700 M MACs, 38 px (``docs/algorithm.md`` §2.1).
    """
    with torch.device("meta"):
        enc, dec = _encoder(cfg), _decoder(cfg)
    h, w = enc.latent_shape(SIDE, SIDE)
    return {
        "encoder_parameters": count_parameters(enc),
        "decoder_parameters": count_parameters(dec),
        "encoder_macs": conv_macs(enc, (1, SIDE, SIDE)),
        "decoder_macs": conv_macs(dec, (cfg.latent_dim, h, w)),
        "receptive_field": receptive_field(enc),
    }


class KernelHead(nn.Module):
    """A head on latents E(x) (B, N, C) that projects them with an operator it trains:
    ``head(Φᵀ M z)``, gradients reaching Φ_raw and M_raw — the official ``hmnist_pred`` protocol
    (``docs/algorithm.md`` §3.3, §7 item 8). The operator is the autoencoder's own module, so
    training the head changes the autoencoder's operator too.
    """

    def __init__(self, operator: LearnedOperator, head: nn.Module) -> None:
        super().__init__()
        self.operator = operator
        self.head = head

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        state = self.operator()
        return self.head(project(state, z.to(state.phi.dtype)))


def build_head(cfg: HomNISTConfig, kind: str, latent_shape: tuple[int, int],
               operator: LearnedOperator | None = None) -> nn.Module:
    """OrthNet on (K, C) coefficients for NIso; :class:`LatentCNN` on (C, h, w) latents for the AE.

    ``cfg.head_norm`` puts a :class:`LatentScaleNorm` in front of the head: ``"sample"`` divides
    each sample by its RMS, ``"channel"`` each latent channel by its RMS over the K coefficients
    (NIso) or the h × w grid (AE). Both keep the NIso head O(K)-invariant; they remove the
    per-sample and per-channel latent scale, which the decoder's normalization leaves almost free
    in pre-training. ``cfg.head_noise`` > 0 then adds :class:`FeatureNoise` in training.
    With ``cfg.head_train_kernel`` and kind ``"niso"`` the head is a :class:`KernelHead` around
    ``operator`` (required then) and takes latents (B, N, C) instead of coefficients.
    """
    _check_kind(kind)
    if cfg.head_norm not in HEAD_NORMS:  # a config changed without validation (object.__setattr__)
        raise ValueError(f"head_norm must be one of {HEAD_NORMS}, got {cfg.head_norm!r}")
    if kind == "ae":
        head: nn.Module = LatentCNN(cfg.latent_dim, latent_shape, cfg.baseline_width)
        channel_dims: tuple[int, ...] = (2, 3)
    else:
        head = OrthNet(cfg.head_features, cfg.head_layers, NUM_CLASSES, in_channels=cfg.latent_dim,
                       inter_features=cfg.head_inter, readout_hidden=cfg.head_readout)
        channel_dims = (1,)
    layers: list[nn.Module] = []
    if cfg.head_norm != "none":
        layers.append(LatentScaleNorm(dims=None if cfg.head_norm == "sample" else channel_dims))
    if cfg.head_noise > 0:
        layers.append(FeatureNoise(cfg.head_noise))
    head = nn.Sequential(*layers, head) if layers else head
    if kind == "niso" and cfg.head_train_kernel:
        if operator is None:
            raise ValueError("head_train_kernel needs the autoencoder's operator")
        head = KernelHead(operator, head)
    return head


def head_input(model: Autoencoder, x: torch.Tensor, kind: str, train_kernel: bool) -> torch.Tensor:
    """What the head of :func:`build_head` takes for images ``x``: :func:`encode_features`, or the
    frozen encoder's flat latents E(x) (B, N, C) for a NIso :class:`KernelHead`."""
    if kind == "niso" and train_kernel:
        with torch.no_grad():
            return model.encode(x)
    return encode_features(model, x, kind)


def encode_features(model: Autoencoder, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The head's input for images ``x`` (B, 1, 40, 40) in [−1, 1] on the model's device:
    NIso coefficients (B, K, C) (encoder and operator frozen) or AE grid latents (B, C, h, w)."""
    if kind == "ae":
        z = model.encode(x)
        h, w = model.latent_shape
        return z.transpose(-1, -2).reshape(len(x), -1, h, w)
    return encode_coefficients(model, x)
