"""Exact information a shapes-world caption carries about the image's factors.

Because a caption is its content (mention set M and the mentioned bins) plus independent wording noise
(see `world_captions`), I(caption; F) = I(content; F) for any factors F. With caption noise:

* M is drawn independently of every factor (clean: independent Bernoulli per factor; partial: exactly
  one, uniformly);
* the mentioned values Y come from the sample itself with probability 1 - eps, or from an independent
  decoy sample with probability eps (``irrelevant_caption_fraction``).

So for factors B_M with law p: I(content; F) = sum_M P(M) I_eps(p_M), where I_eps(p) is the information
of the channel Y = X with probability 1 - eps, Y ~ p otherwise,

    I_eps(p) = H(p) - sum_x p(x) H((1 - eps) delta_x + eps p),

computed here by enumeration over the values. It is not linear in eps: I_eps(p) = (1 - eps) H(p) only
when eps is 0 or 1. A single factor's bins are independent of the other mentioned values, so
I(caption; f) = P(f in M) I_eps(p_f). The second object's labels are never captioned but reach the
caption through their ``"none"`` class (num_objects = 1), and through nothing else, so
I(caption; shape_2) = I(caption; num_objects), and likewise for ``colour_2``, ``size_bin_2``,
``position_bin_2``.

The caption *string* adds wording to the content: `caption_entropy` is H(content) plus the entropy of
the wording given the content, counting only wordings that give distinct strings.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import xlogy

from .world_captions import (
    CAPTION_FACTORS,
    CAPTION_LABELS,
    GENERIC_NOUNS,
    NUM_TEMPLATES,
    WORDS,
    active_factors,
)

SECOND_OBJECT_LABELS = ("shape_2", "colour_2", "size_bin_2", "position_bin_2")


def channel_information(pmf: np.ndarray, irrelevant: float) -> float:
    """I(X; Y) in nats for X ~ pmf and Y = X with probability 1 - irrelevant, else an independent draw.

    Args:
        pmf: ``[K]`` probabilities (any shape; flattened), summing to 1.
        irrelevant: probability eps in [0, 1] that Y is replaced by an independent draw.

    Raises:
        ValueError: if ``pmf`` is not a distribution or ``irrelevant`` is outside [0, 1].
    """
    p = np.asarray(pmf, dtype=np.float64).ravel()
    if p.size == 0 or (p < 0).any() or not math.isclose(p.sum(), 1.0, abs_tol=1e-9):
        raise ValueError("pmf must be non-negative and sum to 1")
    if not 0.0 <= irrelevant <= 1.0:
        raise ValueError(f"irrelevant must be in [0, 1], got {irrelevant}")
    entropy = float(-xlogy(p, p).sum())
    terms = xlogy(irrelevant * p, irrelevant * p)
    # H(row x) = -sum_y eps p_y log(eps p_y), with the y = x term replaced by the kept mass r_x.
    kept = 1.0 - irrelevant + irrelevant * p
    row_entropy = -terms.sum() + terms - xlogy(kept, kept)
    return max(entropy - float((p * row_entropy).sum()), 0.0)


def caption_factor_pmfs(max_objects: int, second_object_probability: float) -> dict[str, np.ndarray]:
    """Law of each caption factor's value (bins are uniform by construction)."""
    p2 = second_object_probability if max_objects == 2 else 0.0
    return {
        "shape": np.full(8, 1 / 8),
        "colour": np.full(8, 1 / 8),
        "size": np.full(3, 1 / 3),
        "position": np.full(9, 1 / 9),
        "rotation": np.full(3, 1 / 3),
        "num_objects": np.array([1.0 - p2, p2]),
    }


def mention_distribution(
    probabilities: dict[str, float], max_objects: int
) -> dict[frozenset[str], tuple[float, float]]:
    """``{mention set M: (P(M | clean caption), P(M | partial caption))}`` over subsets of active factors."""
    active = active_factors(max_objects)
    table = {}
    for r in range(len(active) + 1):
        for subset in itertools.combinations(active, r):
            clean = math.prod(probabilities[f] if f in subset else 1 - probabilities[f] for f in active)
            partial = 1 / len(active) if r == 1 else 0.0
            table[frozenset(subset)] = (clean, partial)
    return table


def mention_probability(
    factor: str, probabilities: dict[str, float], partial_fraction: float, max_objects: int
) -> float:
    """P(a caption mentions ``factor``) = (1 - pi) q_f + pi / (number of active factors)."""
    active = active_factors(max_objects)
    if factor not in active:
        return 0.0
    return (1 - partial_fraction) * probabilities[factor] + partial_fraction / len(active)


def caption_information(
    max_objects: int,
    second_object_probability: float,
    irrelevant_fraction: float,
    partial_fraction: float,
    probabilities: dict[str, float],
    labels: tuple[str, ...],
) -> dict[str, float]:
    """I(caption; label) in nats for every label name in ``labels`` (0 for labels never captioned).

    The second object's labels (``shape_2``, ...) are never captioned, but their ``"none"`` class is
    num_objects = 1, so each carries exactly I(caption; num_objects). Continuous factors are captioned
    through their bins only, so I(caption; size) = I(caption; size_bin) and I(caption; position_x) is the
    information about the grid column. ``caption_is_partial`` is
    visible through the mention set: I(caption; partial flag) = I(M; partial flag).
    """
    pmfs = caption_factor_pmfs(max_objects, second_object_probability)
    column = np.full(3, 1 / 3)
    values = dict.fromkeys(labels, 0.0)
    for factor in CAPTION_FACTORS:
        share = mention_probability(factor, probabilities, partial_fraction, max_objects)
        info = share * channel_information(pmfs[factor], irrelevant_fraction)
        values[CAPTION_LABELS[factor]] = info
        if factor == "size":
            values["size"] = info
        elif factor == "rotation":
            values["rotation"] = info
        elif factor == "position":
            for name in ("position_x", "position_y"):
                values[name] = share * channel_information(column, irrelevant_fraction)
        elif factor == "num_objects":
            # A second-object label is "none" exactly when num_objects is 1, and the caption depends on it
            # only through num_objects, so it carries I(caption; num_objects) about each such label.
            for name in SECOND_OBJECT_LABELS:
                values[name] = info
    if "caption_is_partial" in values:
        table = mention_distribution(probabilities, max_objects).values()
        clean = np.array([c for c, _ in table])
        partial = np.array([p for _, p in table])
        mixed = (1 - partial_fraction) * clean + partial_fraction * partial
        values["caption_is_partial"] = float(
            -xlogy(mixed, mixed).sum()
            + (1 - partial_fraction) * xlogy(clean, clean).sum()
            + partial_fraction * xlogy(partial, partial).sum()
        )
    return {name: values[name] for name in labels}


def caption_information_total(
    max_objects: int,
    second_object_probability: float,
    irrelevant_fraction: float,
    partial_fraction: float,
    probabilities: dict[str, float],
) -> float:
    """I(caption; all factors) in nats: sum over mention sets M of P(M) I_eps(joint law of the bins in M).

    This is the ceiling on I(image; caption), and so on I(T; caption) for any representation T.
    """
    pmfs = caption_factor_pmfs(max_objects, second_object_probability)
    total = 0.0
    table = mention_distribution(probabilities, max_objects)
    for subset, (clean, partial) in table.items():
        weight = (1 - partial_fraction) * clean + partial_fraction * partial
        if weight == 0.0 or not subset:
            continue
        joint = np.ones(1)
        for factor in CAPTION_FACTORS:
            if factor in subset:
                joint = np.multiply.outer(joint, pmfs[factor]).ravel()
        total += weight * channel_information(joint, irrelevant_fraction)
    return total


def caption_content_entropy(
    max_objects: int,
    second_object_probability: float,
    partial_fraction: float,
    probabilities: dict[str, float],
) -> float:
    """H(caption content) in nats: the entropy of what a caption says, H(M) + sum_f P(f in M) H(p_f).

    The content is the mention set M and the mentioned bins. A decoy's bins have the same law as the
    sample's own, so caption noise does not change this entropy (it changes what the content is about).
    Wording (template, synonyms) is extra entropy of the caption *text* and is not counted.
    """
    pmfs = caption_factor_pmfs(max_objects, second_object_probability)
    table = mention_distribution(probabilities, max_objects).values()
    clean = np.array([c for c, _ in table])
    partial = np.array([p for _, p in table])
    mixed = (1 - partial_fraction) * clean + partial_fraction * partial
    entropy = float(-xlogy(mixed, mixed).sum())
    for factor in active_factors(max_objects):
        share = mention_probability(factor, probabilities, partial_fraction, max_objects)
        entropy += share * float(-xlogy(pmfs[factor], pmfs[factor]).sum())
    return entropy


# write_caption's templates 1 (comma list) and 4 (semicolon tags) both write just the noun when a caption
# mentions nothing or only the shape ("circle", "thing"); for every other mention set the five templates
# give five disjoint sets of strings (0 starts with an article, 3 with "a photo of", 2 with "there is",
# 1 always names a noun and never writes ";", 4 writes ";" or no noun).
_MERGED_TEMPLATES = (1, 4)
_MERGING_MENTION_SETS = (frozenset(), frozenset({"shape"}))


def _wording_entropy(mentioned: frozenset[str]) -> float:
    """H(template class) + P(generic noun used) log |nouns|, given the mention set (synonyms apart)."""
    templates = np.full(NUM_TEMPLATES, 1 / NUM_TEMPLATES)
    if mentioned in _MERGING_MENTION_SETS:
        first, second = _MERGED_TEMPLATES
        templates[first] += templates[second]
        templates = np.delete(templates, second)
    entropy = float(-xlogy(templates, templates).sum())
    if "shape" not in mentioned:
        # The generic noun stands in for the shape in templates 0-3, and in template 4 only when it has no
        # tag to write. Within one template class distinct nouns give distinct strings.
        uses_noun = 1.0 if not mentioned else (NUM_TEMPLATES - 1) / NUM_TEMPLATES
        entropy += uses_noun * math.log(len(GENERIC_NOUNS))
    return entropy


def caption_entropy(
    max_objects: int,
    second_object_probability: float,
    partial_fraction: float,
    probabilities: dict[str, float],
) -> float:
    """H(caption string) in nats: H(content) + E[H(string | content)].

    The string determines its content (`world_captions.parse_caption` reads it back), so H(string) =
    H(content) + H(string | content). Given the content, the wording is drawn independently: a uniform
    template out of five, a uniform synonym for each mentioned word, a uniform generic noun when the shape
    is not mentioned. Wordings that write the same string are counted once (templates 1 and 4 coincide
    when nothing or only the shape is mentioned). Caption noise leaves this unchanged: a decoy's caption
    has the same law as the sample's own. This is the H(caption) a Barber-Agakov bound
    I(T; caption) >= H(caption) - E[-log q(caption | T)] needs.

    Args:
        max_objects: 1 or 2 (``num_objects`` can be mentioned only with 2).
        second_object_probability: P(two objects) when ``max_objects == 2``.
        partial_fraction: probability that a caption mentions exactly one factor.
        probabilities: clean-caption mention probability of every caption factor.

    Returns:
        The entropy in nats.
    """
    pmfs = caption_factor_pmfs(max_objects, second_object_probability)
    entropy = caption_content_entropy(max_objects, second_object_probability, partial_fraction, probabilities)
    for subset, (clean, partial) in mention_distribution(probabilities, max_objects).items():
        weight = (1 - partial_fraction) * clean + partial_fraction * partial
        entropy += weight * _wording_entropy(subset)
    for factor in active_factors(max_objects):
        share = mention_probability(factor, probabilities, partial_fraction, max_objects)
        synonyms = np.array([len(words) for words in WORDS[factor]], dtype=np.float64)
        entropy += share * float((pmfs[factor] * np.log(synonyms)).sum())
    return entropy
