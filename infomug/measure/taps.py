"""Which layers are read, and how each is pooled into one vector per image.

Two taps, one call shape (``tap(images) -> {name: [B, D] float32}``):

* `IntermediatesTap` reads transformer blocks through the timm feature API ``forward_intermediates``
  (our `MaskedViTEncoder` and timm ViTs); its names are ``"block_0"``, ``"block_3"``, ...
* `HookTap` reads any named submodules of any `nn.Module` through forward hooks; its names are the
  module names (``"vit.blocks.0"``, ``"layer3"``...).

`make_tap` picks one from a layer spec (``"all"``, ``"last"``, ``"0,3,-1"``, or module names).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from infomug.models.encoder import MaskedViTEncoder

from .sources import LoadedModel

POOLS = ("token", "avg")
_FEW = 8  # module names shown in an "unknown module" error


def parse_layers(spec: str | Sequence[int] | None, depth: int) -> list[int]:
    """Block indices from a spec: ``"all"``/None, ``"last"``, ``"0,3,5"`` or a list of ints.

    Negative indices count from the end (``-1`` is the last block); duplicates are removed and the
    result is sorted.

    Args:
        spec: The layer spec.
        depth: Number of blocks.

    Returns:
        Sorted distinct indices in ``[0, depth)``.

    Raises:
        ValueError: for an index out of range, a token that is not an integer, an empty spec, or
            ``depth < 1`` (naming the spec and the depth).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if spec is None:
        return list(range(depth))
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(range(depth))
        if text == "last":
            return [depth - 1]
        tokens: Sequence[Any] = [token.strip() for token in text.split(",")]
    else:
        tokens = list(spec)
    indices = []
    for token in tokens:
        try:
            if isinstance(token, bool) or not isinstance(token, str | numbers.Integral):
                raise ValueError  # 1.5 or True is no block index (numpy integers are)
            index = int(token)
        except (TypeError, ValueError):
            raise ValueError(
                f"layers {spec!r}: {token!r} is not a block index; use 'all', 'last' or integers "
                f"in [-{depth}, {depth}) for an encoder of depth {depth}"
            ) from None
        if not -depth <= index < depth:
            raise ValueError(f"layers {spec!r}: index {index} is out of range for depth {depth}")
        indices.append(index % depth)
    if not indices:
        raise ValueError(f"layers {spec!r} names no block (depth {depth})")
    return sorted(set(indices))


def encoder_depth(encoder: nn.Module) -> int:
    """Number of transformer blocks: ``len(encoder.vit.blocks)`` for ours, ``len(model.blocks)`` for timm.

    Raises:
        ValueError: for a module that is neither (tap it by module names instead).
    """
    if isinstance(encoder, MaskedViTEncoder):
        return len(encoder.vit.blocks)
    blocks = getattr(encoder, "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and hasattr(encoder, "forward_intermediates"):
        return len(blocks)
    raise ValueError(
        f"cannot tell the depth of a {type(encoder).__name__}: it is not a MaskedViTEncoder or a timm "
        "model with .blocks and forward_intermediates; tap it by module names instead"
    )


def pool_output(output: Any, pool: str, num_prefix_tokens: int = 1) -> Tensor:
    """One float32 vector per image from a module's output.

    Args:
        output: ``[B, L, D]`` tokens, prefix tokens first: ``"token"`` takes token 0 (the class token),
            ``"avg"`` the mean of tokens ``num_prefix_tokens:`` (the patch tokens; this assumes the prefix
            tokens come first and number ``num_prefix_tokens``). ``[B, D]`` is returned as is;
            ``[B, C, H, W]`` maps is averaged over space whatever ``pool``. A tuple or list is reduced to
            its first tensor (e.g. attention modules that also return weights).
        pool: ``"token"`` or ``"avg"``.
        num_prefix_tokens: Class/register tokens in front of the patch tokens.

    Returns:
        ``[B, D]`` float32.

    Raises:
        ValueError: for an unknown pool, an output with no tensor or of another rank (naming the shape),
            ``"token"`` with no prefix token, or ``"avg"`` with no patch token.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if isinstance(output, tuple | list):
        output = next((item for item in output if isinstance(item, Tensor)), None)
    if not isinstance(output, Tensor):
        raise ValueError(f"cannot pool a module output of type {type(output).__name__}: expected a tensor")
    if output.dim() == 2:
        pooled = output
    elif output.dim() == 4:
        pooled = output.mean(dim=(2, 3))
    elif output.dim() == 3:
        if pool == "token":
            if num_prefix_tokens < 1:
                raise ValueError("pool 'token' needs a class token, but num_prefix_tokens is 0: use 'avg'")
            pooled = output[:, 0]
        else:
            if output.shape[1] <= num_prefix_tokens:
                raise ValueError(
                    f"pool 'avg' needs patch tokens after {num_prefix_tokens} prefix tokens, "
                    f"got shape {tuple(output.shape)}"
                )
            pooled = output[:, num_prefix_tokens:].mean(dim=1)
    else:
        raise ValueError(
            f"cannot pool a module output of shape {tuple(output.shape)}: expected [B, L, D], [B, D] "
            "or [B, C, H, W]"
        )
    return pooled.detach().float()


class IntermediatesTap:
    """Features of chosen blocks via the timm feature API ``forward_intermediates`` (DESIGN.md contract).

    The raw block outputs are read (``norm=False``): the final norm is not applied, so the last block's
    features are *not* those of ``forward_features``. Our `MaskedViTEncoder` returns ``[B, 1 + L, D]``
    per block; other timm models are asked for ``output_fmt="NLC"`` with prefix tokens, which are put
    first, and conv nets' ``[B, C, H, W]`` maps are averaged over space.

    Args:
        encoder: A `MaskedViTEncoder` or a timm model with ``forward_intermediates``.
        indices: Block indices in ``[0, depth)``, as `parse_layers` returns them.
        pool: ``"token"`` or ``"avg"`` (see `pool_output`).

    Attributes:
        names: ``["block_0", "block_3", ...]``, one per index.

    Raises:
        ValueError: for an unknown pool, an encoder without ``forward_intermediates``, or no index.
    """

    def __init__(self, encoder: nn.Module, indices: list[int], pool: str = "token") -> None:
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if not callable(getattr(encoder, "forward_intermediates", None)):
            raise ValueError(f"{type(encoder).__name__} has no forward_intermediates: use a HookTap")
        if not indices:
            raise ValueError("IntermediatesTap needs at least one block index")
        self.encoder = encoder
        self.indices = [int(i) for i in indices]
        self.pool = pool
        self.names = [f"block_{i}" for i in self.indices]
        vit = encoder.vit if isinstance(encoder, MaskedViTEncoder) else encoder
        self.num_prefix_tokens = int(getattr(vit, "num_prefix_tokens", 1))

    def select(self, names: Sequence[str]) -> IntermediatesTap:
        """A tap over a subset of this one's ``names``, same encoder and pool."""
        chosen = [index for index, name in zip(self.indices, self.names, strict=True) if name in set(names)]
        return IntermediatesTap(self.encoder, chosen, self.pool)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        """``[B, C, H, W]`` images -> ``{name: [B, D] float32}`` in ``names`` order."""
        if isinstance(self.encoder, MaskedViTEncoder):
            outputs: list[Any] = self.encoder.forward_intermediates(images, indices=self.indices, norm=False)
        else:
            outputs = self._timm_intermediates(images)
        return {
            name: pool_output(output, self.pool, self.num_prefix_tokens)
            for name, output in zip(self.names, outputs, strict=True)
        }

    def _timm_intermediates(self, images: Tensor) -> list[Tensor]:
        method = self.encoder.forward_intermediates
        accepted = inspect.signature(method).parameters
        options: dict[str, Any] = {"indices": self.indices, "norm": False, "intermediates_only": True}
        if "output_fmt" in accepted and "return_prefix_tokens" in accepted:
            options.update(output_fmt="NLC", return_prefix_tokens=True)
        if "stop_early" in accepted:
            options["stop_early"] = True  # no need to run blocks past the deepest tapped one
        outputs = method(images, **options)
        # ViTs with prefix tokens give (spatial [B, L, D], prefix [B, P, D]) pairs.
        return [torch.cat([item[1], item[0]], dim=1) if isinstance(item, tuple) else item for item in outputs]


class HookTap:
    """Features of ANY named submodules of any `nn.Module`, through forward hooks (one forward pass).

    Args:
        model: The module run on the images.
        module_names: Names from ``model.named_modules()``; each module's output is pooled by
            `pool_output`. A module called more than once per forward gives its first output.
        pool: ``"token"`` or ``"avg"``.
        forward: How to run the model, ``forward(model, images)``; default ``model(images)``.
        num_prefix_tokens: Prefix tokens in ``[B, L, D]`` outputs (see `pool_output`).

    Attributes:
        names: The module names, in the order given.

    Raises:
        ValueError: for an unknown pool, no module names, or a name not in the model (listing a few
            valid names).
    """

    def __init__(
        self,
        model: nn.Module,
        module_names: Sequence[str],
        pool: str = "token",
        forward: Callable[[nn.Module, Tensor], Any] | None = None,
        num_prefix_tokens: int = 1,
    ) -> None:
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        names = list(dict.fromkeys(module_names))
        if not names:
            raise ValueError("HookTap needs at least one module name")
        modules = dict(model.named_modules())
        unknown = [name for name in names if name not in modules or name == ""]
        if unknown:
            valid = [name for name in modules if name][:_FEW]
            raise ValueError(
                f"{type(model).__name__} has no module named {unknown}; valid names include {valid} "
                "(see model.named_modules())"
            )
        self.model = model
        self.names = names
        self.pool = pool
        self.forward = forward or (lambda module, images: module(images))
        self.num_prefix_tokens = num_prefix_tokens
        self._modules = [modules[name] for name in names]
        self._handles: list[Any] = []

    def select(self, names: Sequence[str]) -> HookTap:
        """A tap over a subset of this one's ``names``, same model, pool and forward."""
        return HookTap(
            self.model,
            [name for name in self.names if name in set(names)],
            self.pool,
            self.forward,
            self.num_prefix_tokens,
        )

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        """``[B, C, H, W]`` images -> ``{name: [B, D] float32}`` in ``names`` order.

        Raises:
            ValueError: if a hooked module did not run in the forward pass, or its output cannot be pooled.
        """
        captured: dict[str, Any] = {}

        def hook_for(name: str) -> Callable[..., None]:
            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                captured.setdefault(name, output)

            return hook

        try:
            for name, module in zip(self.names, self._modules, strict=True):
                self._handles.append(module.register_forward_hook(hook_for(name)))
            self.forward(self.model, images)
        finally:
            self.close()
        silent = [name for name in self.names if name not in captured]
        if silent:
            raise ValueError(
                f"modules {silent} did not run in the forward pass of {type(self.model).__name__}"
            )
        return {name: pool_output(captured[name], self.pool, self.num_prefix_tokens) for name in self.names}

    def close(self) -> None:
        """Remove any hook still registered (each call removes its own)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


Tap = IntermediatesTap | HookTap


def make_tap(model: LoadedModel, layers: str | Sequence[int] | Sequence[str] | None, pool: str) -> Tap:
    """The tap a layer spec asks for on ``model.encoder``.

    Block specs (``None``, ``"all"``, ``"last"``, integers, ``"0,3,-1"``) give an `IntermediatesTap` when
    the encoder has ``forward_intermediates``. Module names (a list of strings that are not all integers,
    or a comma spec containing names) give a `HookTap`; so do integer-looking names (``"0,2"``) on an
    encoder without ``forward_intermediates`` when they name its modules (an ``nn.Sequential``).

    Raises:
        ValueError: for an unknown pool, a bad block spec, unknown module names, or block indices on an
            encoder without ``forward_intermediates`` (explaining to pass module names).
    """
    encoder = model.encoder
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    tokens = _tokens(layers)
    prefix = _num_prefix_tokens(encoder)
    if tokens is not None and not all(_is_block_token(token) for token in tokens):
        return HookTap(encoder, [str(token) for token in tokens], pool, num_prefix_tokens=prefix)
    if callable(getattr(encoder, "forward_intermediates", None)):
        return IntermediatesTap(encoder, parse_layers(layers, encoder_depth(encoder)), pool)
    modules = dict(encoder.named_modules())
    if tokens is not None and all(str(token) in modules for token in tokens):
        return HookTap(encoder, [str(token) for token in tokens], pool, num_prefix_tokens=prefix)
    valid = [name for name in modules if name][:_FEW]
    raise ValueError(
        f"{type(encoder).__name__} has no forward_intermediates, so layers {layers!r} cannot name blocks: "
        f"pass module names from named_modules() instead, e.g. {valid}"
    )


def _tokens(layers: str | Sequence[int] | Sequence[str] | None) -> list[Any] | None:
    if layers is None:
        return None
    if isinstance(layers, str):
        return [token.strip() for token in layers.split(",") if token.strip()]
    return list(layers)


def _is_block_token(token: Any) -> bool:
    if isinstance(token, numbers.Integral) and not isinstance(token, bool):  # numpy integers too
        return True
    if not isinstance(token, str):
        return False
    text = token.strip().lower()
    return text in ("all", "last") or text.lstrip("-").isdigit()


def _num_prefix_tokens(encoder: nn.Module) -> int:
    vit = encoder.vit if isinstance(encoder, MaskedViTEncoder) else encoder
    return int(getattr(vit, "num_prefix_tokens", 1))
