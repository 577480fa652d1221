"""Presets that trade time for accuracy: ``quick`` (the default; minutes on a laptop CPU) and ``full``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Budget:
    """Every setting that decides how much a measurement costs and how precise it is.

    Attributes:
        name: ``"quick"``, ``"full"`` or ``"custom"``.
        images: Eval images to extract (capped by the split's size).
        batch_size: Images per forward pass during extraction.
        test_fraction: Share of the images held out to test probes (the rest trains them).
        probe_max_iter: L-BFGS iterations of the linear probe.
        probe_weight_decay: L2 penalty of the linear probe (per sample, on the weights).
        knn_k: Neighbours of the k-NN classifier.
        knn_temperature: Temperature of its similarity-weighted vote (DINO's recipe).
        mi_k: Neighbours of the kNN information estimators.
        channel_sigmas: Noise levels of I(X; T + sigma Z), as multiples of each layer's feature scale.
        plane_sigma: The level the information plane plots (one of ``channel_sigmas``).
        channel_samples: Images the noisy channel uses at most (its cost is quadratic in them).
        entropy_samples: Images H(T) uses at most.
        caption_layers: Layers that get the InfoNCE I(T; caption): ``"last"`` or ``"all"``.
        caption_steps: Critic training steps at most for InfoNCE.
        caption_batch: InfoNCE batch size K (its ceiling is log K).
        decoder_samples: Images the decoder bounds use at most.
        uncertainty: Compute standard errors (off: faster, numbers without error bars).
        seed: Seeds splits, noise, masks and critics.
    """

    name: str = "quick"
    images: int = 10_000
    batch_size: int = 256
    test_fraction: float = 0.3
    probe_max_iter: int = 300
    probe_weight_decay: float = 1e-4
    knn_k: int = 20
    knn_temperature: float = 0.07
    mi_k: int = 3
    channel_sigmas: tuple[float, ...] = (0.3, 1.0, 3.0)
    plane_sigma: float = 1.0
    channel_samples: int = 3000
    entropy_samples: int = 3000
    caption_layers: str = "last"
    caption_steps: int = 600
    caption_batch: int = 128
    decoder_samples: int = 2000
    uncertainty: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.plane_sigma not in self.channel_sigmas:
            raise ValueError(
                f"plane_sigma {self.plane_sigma} must be one of channel_sigmas {self.channel_sigmas}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.caption_layers not in ("last", "all"):
            raise ValueError(f"caption_layers must be 'last' or 'all', got {self.caption_layers!r}")
        for name in (
            "images",
            "batch_size",
            "probe_max_iter",
            "knn_k",
            "mi_k",
            "channel_samples",
            "entropy_samples",
            "caption_steps",
            "caption_batch",
            "decoder_samples",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if any(s <= 0 for s in self.channel_sigmas):
            raise ValueError(f"channel_sigmas must be positive, got {self.channel_sigmas}")
        # Checked here, not minutes later after the extraction, by the probes that use them.
        if not self.knn_temperature > 0:
            raise ValueError(f"knn_temperature must be positive, got {self.knn_temperature}")
        if not self.probe_weight_decay >= 0:
            raise ValueError(f"probe_weight_decay must be >= 0, got {self.probe_weight_decay}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channel_sigmas"] = list(self.channel_sigmas)
        return out


BUDGETS: dict[str, Budget] = {
    "quick": Budget(),
    "full": Budget(
        name="full",
        images=20_000,
        probe_max_iter=1000,
        channel_sigmas=(0.1, 0.3, 1.0, 3.0),
        channel_samples=10_000,
        entropy_samples=10_000,
        caption_layers="all",
        caption_steps=3000,
        caption_batch=256,
        decoder_samples=10_000,
    ),
}


def get_budget(name: str, **overrides: Any) -> Budget:
    """The preset ``name`` with ``overrides`` applied (then named ``"custom"`` if any).

    Raises:
        ValueError: for an unknown preset or setting, or an invalid value.
    """
    if name not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {name!r}")
    unknown = set(overrides) - set(Budget.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown budget settings {sorted(unknown)}; known: {sorted(Budget.__dataclass_fields__)}"
        )
    if "channel_sigmas" in overrides:
        overrides["channel_sigmas"] = tuple(float(s) for s in overrides["channel_sigmas"])
    budget = BUDGETS[name]
    changed = replace(budget, **overrides)
    return budget if changed == budget else replace(changed, name="custom")
