"""Which layers are read, and how each is pooled into one vector per image.

Two taps, one call shape (``tap(images) -> {name: [B, D] float32}``, which is
``tap.pool_tokens(tap.tokens(images))``):

* `IntermediatesTap` reads transformer blocks through the timm feature API ``forward_intermediates``
  (our `MaskedViTEncoder` and timm ViTs); its layers are ``"block_0"``, ``"block_3"``, ..., and
  ``"final_norm"`` (the last block after the encoder's final norm, what ``forward_features`` returns).
* `HookTap` reads any named submodules of any `nn.Module` through forward hooks; its layers are the
  module names (``"vit.blocks.0"``, ``"layer3"``...).

``tap.tokens(images)`` gives each layer's raw tokens ``[B, T, D]`` (prefix tokens first) before pooling.
With one pool a feature is named after its layer; with two (``pool="token,avg"`` or ``"both"``) each
layer gives ``"<layer>:token"`` and ``"<layer>:avg"``.

`make_tap` picks one from a layer spec (``"all"``, ``"last"``, ``"0,3,-1"``, ``"norm"``, combinations
such as ``"all,norm"``, or module names).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from infomug.models.encoder import MaskedViTEncoder

from .sources import LoadedModel

POOLS = ("token", "avg")
BOTH_POOLS = "both"
FINAL_NORM = "final_norm"  # the tap name of the final-norm readout
NORM_TOKEN = "norm"  # the layer-spec token that asks for it
_FEW = 8  # module names shown in an "unknown module" error


def parse_pools(spec: str | Sequence[str]) -> list[str]:
    """The pools a spec asks for: ``"token"``, ``"avg"``, ``"token,avg"`` (either order) or ``"both"``.

    Args:
        spec: A pool name, a comma-separated list of them, ``"both"`` (= ``"token,avg"``), or a sequence
            of pool names.

    Returns:
        Distinct pool names from `POOLS`, in the order given.

    Raises:
        ValueError: for an unknown pool (naming it and the valid ones) or an empty spec.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    pools: list[str] = []
    for item in items:
        text = item.strip().lower() if isinstance(item, str) else item
        chosen = list(POOLS) if text == BOTH_POOLS else [text]
        for pool in chosen:
            if pool not in POOLS:
                raise ValueError(
                    f"pool must be one of {POOLS}, a comma-separated list of them or {BOTH_POOLS!r}, got "
                    f"{spec!r} ({item!r} is unknown)"
                )
            if pool not in pools:
                pools.append(pool)
    if not pools:
        raise ValueError(f"pool spec {spec!r} names no pool; use one of {POOLS} or {BOTH_POOLS!r}")
    return pools


def feature_names(layers: Sequence[str], pools: Sequence[str]) -> list[str]:
    """Feature names: the layer names with one pool, ``"<layer>:<pool>"`` with several."""
    if len(pools) == 1:
        return list(layers)
    return [f"{layer}:{pool}" for layer in layers for pool in pools]


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


def as_tokens(output: Any) -> tuple[Tensor, bool]:
    """A module's output as detached float32 tokens, and whether it was a spatial map.

    Args:
        output: ``[B, T, D]`` tokens or ``[B, D]`` vectors (returned as they are), or ``[B, C, H, W]``
            maps (returned as ``[B, H * W, C]`` tokens, row-major over space); a tuple or list is reduced
            to its first tensor, as in `pool_output`.

    Returns:
        ``(tokens, from_map)``; ``from_map`` is True for a ``[B, C, H, W]`` map (its tokens have no prefix
        token, so both pools average them, as `pool_output` does with the map).

    Raises:
        ValueError: for an output with no tensor or of another rank (naming the shape).
    """
    if isinstance(output, tuple | list):
        output = next((item for item in output if isinstance(item, Tensor)), None)
    if not isinstance(output, Tensor):
        raise ValueError(f"cannot pool a module output of type {type(output).__name__}: expected a tensor")
    if output.dim() not in (2, 3, 4):
        raise ValueError(
            f"cannot pool a module output of shape {tuple(output.shape)}: expected [B, L, D], [B, D] "
            "or [B, C, H, W]"
        )
    if output.dim() == 4:
        return output.detach().flatten(2).transpose(1, 2).float(), True
    return output.detach().float(), False


class _PoolingMixin:
    """What both taps share: feature names and `pool_tokens` (from ``layers``, ``pools``, prefix count)."""

    layers: list[str]
    pools: list[str]
    num_prefix_tokens: int
    spatial_maps: set[str]

    @property
    def pool(self) -> str:
        """The pool spec: ``"token"``, ``"avg"``, or both comma-separated in the order given."""
        return ",".join(self.pools)

    @property
    def names(self) -> list[str]:
        """Feature names in output order: the layers with one pool, ``"<layer>:<pool>"`` with two."""
        return feature_names(self.layers, self.pools)

    def layer_of(self, name: str) -> str:
        """The layer (a key of `tokens`) a feature name belongs to: ``"block_3:avg"`` -> ``"block_3"``.

        Raises:
            KeyError: for a name this tap does not produce.
        """
        if name in self.layers and len(self.pools) == 1:
            return name
        layer, _, pool = name.rpartition(":")
        if layer in self.layers and pool in self.pools and len(self.pools) > 1:
            return layer
        raise KeyError(f"{name!r} is not one of this tap's feature names {self.names}")

    def pool_tokens(self, raw: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{layer: tokens}`` as `tokens` returns them -> ``{name: [B, D] float32}`` in ``names`` order.

        ``[B, T, D]`` tokens are pooled by `pool_output` with ``num_prefix_tokens``; ``[B, D]`` vectors
        pass through; tokens of a ``[B, C, H, W]`` map (layers in ``spatial_maps``) have no prefix token,
        so every pool averages them.

        Raises:
            KeyError: for a layer missing from ``raw``.
            ValueError: for tokens that cannot be pooled (see `pool_output`).
        """
        out = {}
        for layer in self.layers:
            tokens = raw[layer]
            for pool in self.pools:
                if layer in self.spatial_maps and tokens.dim() == 3:
                    pooled = tokens.mean(dim=1).detach().float()
                else:
                    pooled = pool_output(tokens, pool, self.num_prefix_tokens)
                out[layer if len(self.pools) == 1 else f"{layer}:{pool}"] = pooled
        return out

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        """``[B, C, H, W]`` images -> ``{name: [B, D] float32}`` in ``names`` order.

        Exactly ``pool_tokens(tokens(images))``.
        """
        return self.pool_tokens(self.tokens(images))

    def tokens(self, images: Tensor) -> dict[str, Tensor]:  # pragma: no cover - each tap defines it
        raise NotImplementedError

    def _layers_named(self, names: Sequence[str]) -> list[str]:
        """The layers (in tap order) that any of ``names``, layer or feature names, belongs to."""
        wanted = set(names)
        return [
            layer
            for layer in self.layers
            if layer in wanted or any(f"{layer}:{pool}" in wanted for pool in self.pools)
        ]


class IntermediatesTap(_PoolingMixin):
    """Features of chosen blocks via the timm feature API ``forward_intermediates`` (DESIGN.md contract).

    The raw block outputs are read (``norm=False``): the final norm is not applied, so the last block's
    features are *not* those of ``forward_features``; ask for ``final_norm`` to read those too (layer
    ``"final_norm"``). Our `MaskedViTEncoder` returns ``[B, 1 + L, D]`` per block; other timm models are
    asked for ``output_fmt="NLC"`` with prefix tokens, which are put first, and conv nets' ``[B, C, H, W]``
    maps become ``[B, H * W, C]`` tokens (averaged over space by either pool).

    Args:
        encoder: A `MaskedViTEncoder` or a timm model with ``forward_intermediates``.
        indices: Block indices in ``[0, depth)``, as `parse_layers` returns them (may be empty when
            ``final_norm`` is set).
        pool: ``"token"``, ``"avg"``, ``"token,avg"`` or ``"both"`` (see `parse_pools`, `pool_output`).
        final_norm: Also read the last block after the final norm, as ``forward_features`` returns it.

    Attributes:
        layers: ``["block_0", "block_3", ..., "final_norm"]``, one per index, then the final norm if asked.
        names: Feature names: ``layers`` with one pool, ``"block_0:token"``, ``"block_0:avg"``... with two.
        num_prefix_tokens: Class/register tokens in front of the patch tokens of every ``[B, T, D]`` output.
        spatial_maps: Layers whose outputs were ``[B, C, H, W]`` maps (filled by `tokens`).

    Raises:
        ValueError: for an unknown pool, an encoder without ``forward_intermediates``, or nothing to read.
    """

    def __init__(
        self, encoder: nn.Module, indices: list[int], pool: str = "token", final_norm: bool = False
    ) -> None:
        self.pools = parse_pools(pool)
        if not callable(getattr(encoder, "forward_intermediates", None)):
            raise ValueError(f"{type(encoder).__name__} has no forward_intermediates: use a HookTap")
        if not indices and not final_norm:
            raise ValueError("IntermediatesTap needs at least one block index or final_norm=True")
        self.encoder = encoder
        self.indices = [int(i) for i in indices]
        self.final_norm = bool(final_norm)
        self.layers = [f"block_{i}" for i in self.indices] + ([FINAL_NORM] if self.final_norm else [])
        self.num_prefix_tokens = _num_prefix_tokens(encoder)
        self.spatial_maps: set[str] = set()

    def select(self, names: Sequence[str]) -> IntermediatesTap:
        """A tap over the layers of ``names`` (layer or feature names), same encoder and pools."""
        chosen = set(self._layers_named(names))
        indices = [index for index, layer in zip(self.indices, self.layers, strict=False) if layer in chosen]
        return IntermediatesTap(self.encoder, indices, self.pool, final_norm=FINAL_NORM in chosen)

    @torch.no_grad()
    def tokens(self, images: Tensor) -> dict[str, Tensor]:
        """``[B, C, H, W]`` images -> ``{layer: raw output}`` in ``layers`` order, before pooling.

        Returns:
            Detached float32 ``[B, T, D]`` tokens, prefix tokens first (``[B, D]`` for 2-D outputs,
            ``[B, H * W, C]`` for conv maps).
        """
        vit = _vision_transformer(self.encoder)
        final: Any = None
        outputs: list[Any] = []
        if self.final_norm and self.indices and vit is not None:
            # One pass: timm's ViT returns norm(last block) next to the raw blocks, which is exactly
            # forward_features (patch_drop is the identity in eval mode).
            final, pairs = vit.forward_intermediates(
                images,
                indices=self.indices,
                norm=False,
                output_fmt="NLC",
                return_prefix_tokens=True,
                intermediates_only=False,
                stop_early=False,
            )
            outputs = _prefix_first(pairs)
        else:
            if self.indices:
                if isinstance(self.encoder, MaskedViTEncoder):
                    outputs = self.encoder.forward_intermediates(images, indices=self.indices, norm=False)
                else:
                    outputs = self._timm_intermediates(images)
            if self.final_norm:
                final = self.encoder.forward_features(images)
        if self.final_norm:
            outputs = [*outputs, final]
        raw = {}
        for layer, output in zip(self.layers, outputs, strict=True):
            raw[layer], from_map = as_tokens(output)
            if from_map:
                self.spatial_maps.add(layer)
        return raw

    def _timm_intermediates(self, images: Tensor) -> list[Tensor]:
        method = self.encoder.forward_intermediates
        accepted = inspect.signature(method).parameters
        options: dict[str, Any] = {"indices": self.indices, "norm": False, "intermediates_only": True}
        if "output_fmt" in accepted and "return_prefix_tokens" in accepted:
            options.update(output_fmt="NLC", return_prefix_tokens=True)
        if "stop_early" in accepted:
            options["stop_early"] = True  # no need to run blocks past the deepest tapped one
        return _prefix_first(method(images, **options))


class HookTap(_PoolingMixin):
    """Features of ANY named submodules of any `nn.Module`, through forward hooks (one forward pass).

    Args:
        model: The module run on the images.
        module_names: Names from ``model.named_modules()``; each module's output is read by `as_tokens`
            and pooled by `pool_output`. A module called more than once per forward gives its first output.
        pool: ``"token"``, ``"avg"``, ``"token,avg"`` or ``"both"`` (see `parse_pools`).
        forward: How to run the model, ``forward(model, images)``; default ``model(images)``.
        num_prefix_tokens: Prefix tokens in ``[B, L, D]`` outputs (see `pool_output`).

    Attributes:
        layers: The module names, in the order given.
        names: Feature names: ``layers`` with one pool, ``"<module>:token"``, ``"<module>:avg"`` with two.
        spatial_maps: Modules whose outputs were ``[B, C, H, W]`` maps (filled by `tokens`).

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
        self.pools = parse_pools(pool)
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
        self.layers = names
        self.forward = forward or (lambda module, images: module(images))
        self.num_prefix_tokens = num_prefix_tokens
        self.spatial_maps: set[str] = set()
        self._modules = [modules[name] for name in names]
        self._handles: list[Any] = []

    def select(self, names: Sequence[str]) -> HookTap:
        """A tap over the modules of ``names`` (module or feature names), same model, pools and forward."""
        return HookTap(self.model, self._layers_named(names), self.pool, self.forward, self.num_prefix_tokens)

    @torch.no_grad()
    def tokens(self, images: Tensor) -> dict[str, Tensor]:
        """``[B, C, H, W]`` images -> ``{module name: raw output}`` in ``layers`` order, before pooling.

        Returns:
            Detached float32 ``[B, T, D]`` tokens as the module gave them, ``[B, D]`` for 2-D outputs,
            ``[B, H * W, C]`` for ``[B, C, H, W]`` maps.

        Raises:
            ValueError: if a hooked module did not run in the forward pass, or its output is not a tensor
                of rank 2 to 4.
        """
        captured: dict[str, Any] = {}

        def hook_for(name: str) -> Callable[..., None]:
            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                captured.setdefault(name, output)

            return hook

        try:
            for name, module in zip(self.layers, self._modules, strict=True):
                self._handles.append(module.register_forward_hook(hook_for(name)))
            self.forward(self.model, images)
        finally:
            self.close()
        silent = [name for name in self.layers if name not in captured]
        if silent:
            raise ValueError(
                f"modules {silent} did not run in the forward pass of {type(self.model).__name__}"
            )
        raw = {}
        for name in self.layers:
            raw[name], from_map = as_tokens(captured[name])
            if from_map:
                self.spatial_maps.add(name)
        return raw

    def close(self) -> None:
        """Remove any hook still registered (each call removes its own)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


Tap = IntermediatesTap | HookTap


def make_tap(model: LoadedModel, layers: str | Sequence[int] | Sequence[str] | None, pool: str) -> Tap:
    """The tap a layer spec asks for on ``model.encoder``.

    Block specs (``None``, ``"all"``, ``"last"``, integers, ``"0,3,-1"``) give an `IntermediatesTap` when
    the encoder has ``forward_intermediates``; the token ``"norm"`` adds the final-norm readout
    (``"all,norm"``, ``"last,norm"``, or ``"norm"`` alone), named ``"final_norm"``. Module names (a list
    of strings that are not all block tokens, or a comma spec containing names) give a `HookTap`; so do
    integer-looking names (``"0,2"``) on an encoder without ``forward_intermediates`` when they name its
    modules (an ``nn.Sequential``).

    Args:
        model: The loaded model whose ``encoder`` is tapped.
        layers: The layer spec.
        pool: ``"token"``, ``"avg"``, ``"token,avg"`` or ``"both"`` (see `parse_pools`).

    Raises:
        ValueError: for an unknown pool, a bad block spec, unknown module names, or block indices (or
            ``"norm"``) on an encoder without ``forward_intermediates`` (explaining to pass module names).
    """
    encoder = model.encoder
    parse_pools(pool)
    tokens = _tokens(layers)
    prefix = _num_prefix_tokens(encoder)
    if tokens is not None and not all(_is_block_token(token) for token in tokens):
        return HookTap(encoder, [str(token) for token in tokens], pool, num_prefix_tokens=prefix)
    if callable(getattr(encoder, "forward_intermediates", None)):
        final_norm = tokens is not None and any(_is_norm_token(token) for token in tokens)
        blocks = [token for token in tokens if not _is_norm_token(token)] if tokens is not None else None
        if blocks is not None and not blocks:
            indices: list[int] = []  # "norm" alone
        else:
            spec: Any = layers
            if final_norm:  # the spec without its "norm" token, a string again when it was one
                spec = ",".join(blocks) if all(isinstance(b, str) for b in blocks) else blocks
            indices = parse_layers(spec, encoder_depth(encoder))
        return IntermediatesTap(encoder, indices, pool, final_norm=final_norm)
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
    return text in ("all", "last", NORM_TOKEN) or text.lstrip("-").isdigit()


def _prefix_first(outputs: Sequence[Any]) -> list[Any]:
    # ViTs with prefix tokens give (spatial [B, L, D], prefix [B, P, D]) pairs.
    return [torch.cat([item[1], item[0]], dim=1) if isinstance(item, tuple) else item for item in outputs]


def _is_norm_token(token: Any) -> bool:
    return isinstance(token, str) and token.strip().lower() == NORM_TOKEN


def _num_prefix_tokens(encoder: nn.Module) -> int:
    vit = encoder.vit if isinstance(encoder, MaskedViTEncoder) else encoder
    return int(getattr(vit, "num_prefix_tokens", 1))


def _vision_transformer(encoder: nn.Module) -> VisionTransformer | None:
    """The timm ViT inside ``encoder`` (ours wraps one as ``.vit``), or None for any other model."""
    vit = encoder.vit if isinstance(encoder, MaskedViTEncoder) else encoder
    return vit if isinstance(vit, VisionTransformer) else None
