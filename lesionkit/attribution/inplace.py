"""Switch in-place activations off for the duration of an attribution, then put them back.

Hook-based CAMs and some Captum methods break when a module's output is later overwritten in place
("Output 0 of BackwardHookFunctionBackward is a view and is being modified inplace", captum#378,
pytorch-grad-cam PR #183). timm's norm-act layers and fastai's heads use ``inplace=True`` activations, so every
attribution call runs inside :func:`disable_inplace`; MONAI does the same by flipping ``module.inplace``.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def disable_inplace(model: nn.Module) -> Iterator[list[str]]:
    """Set ``inplace=False`` on every submodule that has a boolean ``inplace`` flag; restore the flags on exit.

    Yields the dotted names of the modules that were changed (useful for logging and tests).
    """
    changed: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if getattr(module, "inplace", None) is True:
            module.inplace = False
            changed.append((name, module))
    try:
        yield [name for name, _ in changed]
    finally:
        for _, module in changed:
            module.inplace = True
