"""Presets that trade time for accuracy: ``quick`` (the default; minutes on a laptop CPU) and ``full``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

# Iterations the probe may take in the quick budget (about 25 ms each on 2 cores, per layer). It stops
# earlier at its tolerances: preconditioned, on a 1,000-step MAE's 192-wide features of the world's 11
# labels, after about 210 iterations at the quick change tolerance, within 5e-5 nats of its objective
# after 300; when it does not, it says so. The full budget allows 3000, at a tolerance 1000 times tighter.
PROBE_MAX_ITER_QUICK = 300


@dataclass(frozen=True)
class Budget:
    """Every setting that decides how much a measurement costs and how precise it is.

    Attributes:
        name: ``"quick"``, ``"full"`` or ``"custom"``.
        images: Eval images to extract (capped by the split's size).
        batch_size: Images per forward pass during extraction.
        test_fraction: Share of the images held out to test probes (the rest trains them).
        probe_max_iter: L-BFGS iterations of the linear probe at most (it stops at its tolerances).
        probe_weight_decay: L2 penalty of the linear probe (per sample, on the weights).
        knn_k: Neighbours of the k-NN classifier.
        knn_temperature: Temperature of its similarity-weighted vote (DINO's recipe).
        mi_k: Neighbours of the kNN information estimators.
        channel_sigmas: Noise levels of I(X; T + sigma Z): absolute on each layer's PCA-whitened
            (unit-variance) features, or multiples of its feature scale when ``whiten_diagnostics`` is off.
        plane_sigma: The level the information plane plots (one of ``channel_sigmas``).
        channel_samples: Images the noisy channel uses at most (its cost is quadratic in them).
        entropy_samples: Images H(T) uses at most.
        caption_layers: Layers that get the InfoNCE I(T; caption): ``"last"`` or ``"all"``.
        caption_steps: Critic training steps at most for InfoNCE.
        caption_batch: InfoNCE batch size K (its ceiling is log K).
        decoder_samples: Images the decoder bounds use at most.
        uncertainty: Compute standard errors (off: faster, numbers without error bars).
        seed: Seeds splits, noise, masks and critics.
        probe_tolerance_grad: The probe's L-BFGS stops when its largest gradient entry falls below this
            times the loss scale (the sum of log C over the labels).
        probe_tolerance_change: ...or when the loss or the step changes by less than this times it.
        whiten_diagnostics: Measure the noisy channel and H(T), geometry diagnostics, on PCA-whitened
            features (invariant to invertible linear maps); off: on raw features, sigma relative to
            their RMS scale (the old behaviour).
        usable_information: Train the fresh decoders of the headline (image, caption, labels).
        factor_layers: Layers whose pooled vector gets the label decoders: ``"last"`` or ``"all"``.
        decoder_layers: Layers that get the image and caption decoders (their token grids are kept):
            ``"last"`` or ``"all"``.
        decoder_val_fraction: Share of the images the decoders stop early on (carved out of the probes'
            train split; the test split is the probes').
        image_from_pooled: Also decode the image from the pooled vector, not only from the token grid
            (doubles the image decoder's cost; on in the full budget).
        decoder_train_images: Train images the image and caption decoders fit on at most (0: the whole
            train split); the test split is never capped, so every model is read on the same images.
        anchor_layers: Layers of the random-init anchor that are measured: ``"last"`` (where the headline
            reads) or ``"all"``.
        diagnostic_layers: Layers that get the geometry diagnostics (noisy channel, H(T), RankMe) and
            Ross's kNN estimate on the probe's logits: ``"last"`` or ``"all"``. Every layer gets the
            probes, k-NN and the probe's cross-entropy bound either way.
        decoder_max_epochs: Caps every decoder's epochs (0: each family's own budget). For quick tests:
            a capped decoder says that it did not converge.
    """

    name: str = "quick"
    images: int = 10_000
    batch_size: int = 256
    test_fraction: float = 0.3
    probe_max_iter: int = PROBE_MAX_ITER_QUICK
    probe_weight_decay: float = 1e-4
    knn_k: int = 20
    knn_temperature: float = 0.07
    mi_k: int = 3
    # Absolute on whitened features: I(X; T + sigma Z) <= r/2 log(1 + 1/sigma^2) for r whitened dims, so
    # 192 dims saturate log N up to sigma ~ 3; the curve runs to where it stops saturating.
    channel_sigmas: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0)
    plane_sigma: float = 10.0
    channel_samples: int = 3000
    entropy_samples: int = 3000
    caption_layers: str = "last"
    caption_steps: int = 600
    caption_batch: int = 128
    decoder_samples: int = 2000
    uncertainty: bool = True
    seed: int = 0
    # -- issue 15, readouts on equal terms: probes run to a tolerance, geometry diagnostics whitened --
    probe_tolerance_grad: float = 1e-7
    probe_tolerance_change: float = 1e-7
    whiten_diagnostics: bool = True
    # The fresh decoders of the headline (infomug.measure.usable).
    usable_information: bool = True
    factor_layers: str = "last"
    decoder_layers: str = "last"
    decoder_val_fraction: float = 0.1
    image_from_pooled: bool = False
    anchor_layers: str = "last"
    decoder_train_images: int = 2000
    decoder_max_epochs: int = 0
    # The diagnostics cost about two thirds of a layer's time (measured by experiments/bench_measure.py);
    # the quick budget keeps them where the headline reads.
    diagnostic_layers: str = "last"

    def __post_init__(self) -> None:
        if self.plane_sigma not in self.channel_sigmas:
            raise ValueError(
                f"plane_sigma {self.plane_sigma} must be one of channel_sigmas {self.channel_sigmas}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        for name in (
            "caption_layers",
            "factor_layers",
            "decoder_layers",
            "anchor_layers",
            "diagnostic_layers",
        ):
            if getattr(self, name) not in ("last", "all"):
                raise ValueError(f"{name} must be 'last' or 'all', got {getattr(self, name)!r}")
        for name in ("decoder_max_epochs", "decoder_train_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not 0.0 < self.decoder_val_fraction < 1.0 - self.test_fraction:
            raise ValueError(
                f"decoder_val_fraction must be in (0, 1 - test_fraction), got {self.decoder_val_fraction}"
            )
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
        # -- issue 15 fields --
        for name in ("probe_tolerance_grad", "probe_tolerance_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        if not isinstance(self.whiten_diagnostics, bool):
            raise ValueError(f"whiten_diagnostics must be true or false, got {self.whiten_diagnostics!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channel_sigmas"] = list(self.channel_sigmas)
        return out


BUDGETS: dict[str, Budget] = {
    "quick": Budget(),
    "full": Budget(
        name="full",
        images=20_000,
        probe_max_iter=3000,
        probe_tolerance_change=1e-10,
        channel_samples=10_000,
        entropy_samples=10_000,
        caption_layers="all",
        factor_layers="all",
        decoder_layers="all",
        image_from_pooled=True,
        anchor_layers="all",
        diagnostic_layers="all",
        decoder_train_images=0,
        caption_steps=3000,
        caption_batch=256,
        decoder_samples=10_000,
    ),
}


def get_budget(name: str, **overrides: Any) -> Budget:
    """The preset ``name`` with ``overrides`` applied (then named ``"custom"`` if any).

    New ``channel_sigmas`` without a ``plane_sigma`` move the plane to the given level nearest (in log) to
    the preset's.

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
    budget = BUDGETS[name]
    if "channel_sigmas" in overrides:
        overrides["channel_sigmas"] = tuple(float(s) for s in overrides["channel_sigmas"])
        if "plane_sigma" not in overrides and budget.plane_sigma not in overrides["channel_sigmas"]:
            # The plane follows the new levels: the one nearest (in log) to the preset's.
            overrides["plane_sigma"] = min(
                overrides["channel_sigmas"],
                key=lambda sigma: abs(math.log(max(sigma, 1e-300) / budget.plane_sigma)),
            )
    changed = replace(budget, **overrides)
    return budget if changed == budget else replace(changed, name="custom")
