"""Where a run computes: device choice and opt-in mixed precision.

Every run command takes ``--device {auto,cpu,cuda}`` (:func:`resolve_device`) and, for models
with convolutions, ``--amp {off,bf16,fp16}`` (:func:`resolve_amp_dtype`). Mixed precision only
ever covers encoders and decoders: the spectral linear algebra (projections, τ, the losses on
coefficients) runs outside autocast, in float32 or the operator's compute dtype.
"""

from __future__ import annotations

import contextlib

import torch

from niso_geom.errors import NisoGeomError

__all__ = ["DEVICES", "DeviceUnavailableError", "autocast", "resolve_amp_dtype", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(NisoGeomError, RuntimeError):
    """The requested device does not exist on this machine."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None: CUDA if available, else CPU; anything else is passed to ``torch.device``.

    Raises :class:`DeviceUnavailableError` for ``cuda`` on a machine without a usable GPU.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise DeviceUnavailableError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("device 'cuda' requested but no CUDA GPU is available here "
                                     "(torch.cuda.is_available() is False); use --device cpu or auto")
    return device


def resolve_amp_dtype(amp: bool | str | torch.dtype | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of encoders and decoders, or None for full precision (the default).

    ``None``/``False``/``"off"``: none. ``"auto"``/``True``: bfloat16 on CUDA devices that
    support it, else float16 on CUDA; bfloat16 on CPU for ``True``, none for ``"auto"``.
    ``"bf16"``/``"bfloat16"``, ``"fp16"``/``"float16"`` or a dtype: that dtype.
    """
    dev = torch.device(device)
    if isinstance(amp, torch.dtype):
        return amp
    if amp is None or amp is False or amp == "off":
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16
    if amp == "auto" or amp is True:
        if dev.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if amp is True else None
    raise ValueError(f"amp must be a bool, None, 'auto', 'off', 'bf16', 'fp16' or a dtype, got {amp!r}")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on ``device`` with ``dtype``, or a no-op for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
