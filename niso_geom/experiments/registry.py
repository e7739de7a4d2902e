"""Method registries: an experiment's methods by name, instead of if/elif chains.

An experiment package keeps one :class:`MethodRegistry`; each method registers itself where it
is defined::

    METHODS = MethodRegistry("homnist")

    @METHODS.register("ae_aug", "plain autoencoder trained on augmented pairs", default=True)
    def run_ae_aug(cfg, seed, ctx): ...

``METHODS.defaults()`` lists the methods a plain ``run`` uses (registration order), ``choices()``
every name (for ``--methods``), and ``METHODS[name]`` raises an error that lists the known names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Method", "MethodRegistry", "UnknownMethodError"]


class UnknownMethodError(KeyError, ValueError):
    """A method name that is not registered (a ValueError for the CLI, a KeyError for lookups)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Method:
    """A registered method: its name, a one-line description and the function that runs it."""

    name: str
    help: str
    fn: Callable[..., Any]
    default: bool = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class MethodRegistry:
    """An ordered name → :class:`Method` table for one experiment."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self._methods: dict[str, Method] = {}

    def register(self, name: str, help: str, *, default: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``fn`` under ``name``; ``default=False`` keeps it out of :meth:`defaults`."""

        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._methods:
                raise ValueError(f"{self.experiment}: method {name!r} is registered twice")
            self._methods[name] = Method(name, help, fn, default)
            return fn

        return deco

    def __getitem__(self, name: str) -> Method:
        try:
            return self._methods[name]
        except KeyError:
            raise UnknownMethodError(f"{self.experiment}: unknown method {name!r}; choose from "
                                     f"{', '.join(self._methods)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)

    def defaults(self) -> tuple[str, ...]:
        """The methods a run uses when none are named, in registration order."""
        return tuple(n for n, m in self._methods.items() if m.default)

    def choices(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._methods)

    def validate(self, names: Any) -> tuple[str, ...]:
        """``names`` as a tuple, each checked (the error lists the known names)."""
        names = tuple(names)
        for n in names:
            self[n]
        return names

    def help_text(self) -> str:
        """``name: help`` lines for ``--help``."""
        return "; ".join(f"{m.name}: {m.help}" for m in self._methods.values())
