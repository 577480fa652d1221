"""The result type every estimator returns.

Import-free on purpose (standard library only): `infomug measure`, the CLI and notebooks store and
print `Estimate` objects without knowing which estimator made them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Kind = Literal["point", "lower_bound", "upper_bound"]
KINDS: tuple[str, ...] = ("point", "lower_bound", "upper_bound")

NATS_PER_BIT = math.log(2.0)
Z_95 = 1.959963984540054  # two-sided 95% normal quantile
# Parameters the one-line summary leaves out: each is said in a warning, or is a nested record.
SUMMARY_OMITS = frozenset({"finite_value", "chosen_by", "auto_reason", "auto_candidates"})


@dataclass(frozen=True)
class Estimate:
    """An information estimate with everything needed to read it honestly.

    Attributes:
        value: The estimate in nats. May be ``inf`` (a detected deterministic relation).
        stderr: Standard error in nats; ``nan`` when not computed.
        n: Number of samples the estimate used.
        method: Estimator name, e.g. ``"ksg1"``.
        params: Estimator settings (k, metric, jitter, ...), JSON-serialisable.
        quantity: What was estimated: ``"mutual_information"`` or ``"entropy"``.
        kind: ``"point"``, or ``"lower_bound"``/``"upper_bound"`` for variational bounds.
        ceiling: The largest value this estimator can report (e.g. ``log K`` for InfoNCE), or None.
        seconds: Wall time the estimate took.
        warnings: Human-readable caveats (ties, saturation, routing decisions, ...).
    """

    value: float
    stderr: float
    n: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    quantity: str = "mutual_information"
    kind: Kind = "point"
    ceiling: float | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.n < 0:
            raise ValueError(f"n must be non-negative, got {self.n}")

    @property
    def bits(self) -> float:
        """The estimate in bits."""
        return self.value / NATS_PER_BIT

    @property
    def stderr_bits(self) -> float:
        """The standard error in bits."""
        return self.stderr / NATS_PER_BIT

    @property
    def ci95(self) -> tuple[float, float]:
        """Normal-approximation 95% interval in nats; ``(nan, nan)`` without a standard error."""
        if math.isinf(self.value):
            return (self.value, self.value)
        half = Z_95 * self.stderr
        return (self.value - half, self.value + half)

    @property
    def ci95_bits(self) -> tuple[float, float]:
        """The 95% interval in bits."""
        low, high = self.ci95
        return (low / NATS_PER_BIT, high / NATS_PER_BIT)

    def with_extra(self, *, warnings: tuple[str, ...] = (), **changes: Any) -> Estimate:
        """A copy with ``changes`` applied and ``warnings`` appended."""
        return replace(self, warnings=self.warnings + tuple(warnings), **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf``/``nan`` stay floats; ``json`` writes them as Infinity/NaN)."""
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        out["bits"] = self.bits
        out["stderr_bits"] = self.stderr_bits
        out["ci95"] = list(self.ci95)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Estimate:
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        names = {f for f in cls.__dataclass_fields__}
        kwargs = {key: value for key, value in data.items() if key in names}
        kwargs["warnings"] = tuple(kwargs.get("warnings", ()))
        return cls(**kwargs)

    def summary(self) -> str:
        """One line a human reads: value in nats and bits, uncertainty, method and settings."""
        symbol = "I" if self.quantity == "mutual_information" else "H"
        bound = {"lower_bound": " (lower bound)", "upper_bound": " (upper bound)"}.get(self.kind, "")
        if math.isinf(self.value):
            numbers = f"{self.value} nats"
        elif math.isnan(self.stderr):
            numbers = f"{self.value:.4f} nats = {self.bits:.4f} bits (no uncertainty computed)"
        else:
            low, high = self.ci95
            numbers = (
                f"{self.value:.4f} ± {self.stderr:.4f} nats = {self.bits:.4f} ± {self.stderr_bits:.4f} bits"
                f", 95% CI [{low:.4f}, {high:.4f}] nats"
            )
        settings = ", ".join(
            f"{key}={value}" for key, value in self.params.items() if key not in SUMMARY_OMITS
        )
        ceiling = f", ceiling {self.ceiling:.4f} nats" if self.ceiling is not None else ""
        run = f"[{self.method}: {settings}; N={self.n}; {self.seconds:.2f} s]"
        return f"{symbol} = {numbers}{bound}{ceiling} {run}"

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  warning: {text}" for text in self.warnings]
        return "\n".join(lines)
