"""Shapes-world captions: which factors a caption mentions, how it words them, and how to read them back.

A caption describes the first object only. It mentions a random subset of the six *caption factors*
(``shape``, ``colour``, ``size`` (bin), ``position`` (bin), ``rotation`` (bin), ``num_objects``):

* a *clean* caption mentions each factor independently with its probability in
  `DEFAULT_MENTION_PROBABILITIES` (so shape or colour may be left out, and now and then nothing is said);
* a *partial* caption (probability ``partial_caption_fraction``) mentions exactly one factor, chosen
  uniformly among the active ones (``num_objects`` is active only when two objects can be drawn).

It is then worded with one of five templates (noun phrase, comma list, short sentences, "a photo of",
semicolon tags) and one of the synonyms of each word, all drawn uniformly and independently of the
factors. The background and the second object's own factors are never mentioned.

Every phrase of `WORDS` belongs to exactly one factor value and no template word is a phrase, so
`parse_caption` recovers the mentioned factors exactly: the caption is its *content* (mention set and
values) plus wording noise that is independent of everything else. `world_information` relies on this.
"""

from __future__ import annotations

import re

import numpy as np

from .world_factors import COLUMNS

CAPTION_FACTORS = ("shape", "colour", "size", "position", "rotation", "num_objects")
# The label each caption factor describes.
CAPTION_LABELS = {
    "shape": "shape",
    "colour": "colour",
    "size": "size_bin",
    "position": "position_bin",
    "rotation": "rotation_bin",
    "num_objects": "num_objects",
}
DEFAULT_MENTION_PROBABILITIES = {
    "shape": 0.9,
    "colour": 0.8,
    "size": 0.5,
    "position": 0.6,
    "rotation": 0.3,
    "num_objects": 0.3,
}

# WORDS[factor][value] = synonyms. ``num_objects`` values are counts minus one.
WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "shape": (
        ("circle", "disk"),
        ("square", "box"),
        ("triangle",),
        ("star",),
        ("cross", "plus sign"),
        ("hexagon",),
        ("ring", "donut"),
        ("semicircle", "half circle"),
    ),
    "colour": (
        ("red", "scarlet"),
        ("green",),
        ("blue",),
        ("yellow",),
        ("purple", "violet"),
        ("cyan", "turquoise"),
        ("orange",),
        ("white",),
    ),
    "size": (("small", "tiny", "little"), ("medium-sized", "mid-sized"), ("large", "big")),
    "position": (
        ("top left", "upper left"),
        ("top", "upper middle"),
        ("top right", "upper right"),
        ("left", "middle left"),
        ("center", "middle"),
        ("right", "middle right"),
        ("bottom left", "lower left"),
        ("bottom", "lower middle"),
        ("bottom right", "lower right"),
    ),
    "rotation": (("tilted right", "leaning right"), ("upright", "straight"), ("tilted left", "leaning left")),
    "num_objects": (("alone", "by itself"), ("with another object", "next to another object")),
}
GENERIC_NOUNS = ("shape", "object", "thing")
NUM_TEMPLATES = 5

_PHRASES = {
    phrase: (factor, value)
    for factor, values in WORDS.items()
    for value, synonyms in enumerate(values)
    for phrase in synonyms
}
# Longest first, so "middle left" wins over "middle" and "tilted right" over "right".
_PATTERN = re.compile(
    r"\b(" + "|".join(re.escape(p) for p in sorted(_PHRASES, key=len, reverse=True)) + r")\b"
)


def active_factors(max_objects: int) -> tuple[str, ...]:
    """Caption factors that can be mentioned: ``num_objects`` only when a second object can appear."""
    return CAPTION_FACTORS if max_objects == 2 else CAPTION_FACTORS[:-1]


def draw_mentions(
    u: np.ndarray, probabilities: dict[str, float], partial_fraction: float, active: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Which caption factors each caption mentions.

    Args:
        u: ``[B, NUM_COLUMNS]`` uniforms of the samples whose captions are written.
        probabilities: clean-caption mention probability of each caption factor.
        partial_fraction: probability that a caption is partial (exactly one factor).
        active: the factors that may be mentioned (`active_factors`).

    Returns:
        ``(mentions [B, len(CAPTION_FACTORS)] bool, partial [B] bool)``.
    """
    partial = u[:, COLUMNS["partial"]] < partial_fraction
    mentions = np.zeros((u.shape[0], len(CAPTION_FACTORS)), dtype=bool)
    choice = np.minimum((u[:, COLUMNS["partial_choice"]] * len(active)).astype(np.int64), len(active) - 1)
    for j, factor in enumerate(CAPTION_FACTORS):
        if factor not in active:
            continue
        clean = u[:, COLUMNS[f"mention_{factor}"]] < probabilities[factor]
        mentions[:, j] = np.where(partial, choice == active.index(factor), clean)
    return mentions, partial


def _pick(options: tuple[str, ...], u: float) -> str:
    return options[min(int(u * len(options)), len(options) - 1)]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def write_caption(values: dict[str, int], u: np.ndarray) -> str:
    """Word one caption.

    Args:
        values: ``{caption factor: value index}`` of the mentioned factors only.
        u: ``[NUM_COLUMNS]`` uniforms of the caption's source sample (template and synonym columns).

    Returns:
        The caption, lower case.
    """
    words = {f: _pick(WORDS[f][v], u[COLUMNS[f"word_{f}"]]) for f, v in values.items()}
    noun = words.get("shape") or _pick(GENERIC_NOUNS, u[COLUMNS["word_noun"]])
    template = min(int(u[COLUMNS["template"]] * NUM_TEMPLATES), NUM_TEMPLATES - 1)
    adjectives = [words[f] for f in ("size", "colour") if f in words]
    if template in (0, 3):
        phrase = " ".join([*adjectives, noun])
        text = f"{_article(phrase)} {phrase}"
        if "position" in words:
            text += f" in the {words['position']}"
        text += "".join(f", {words[f]}" for f in ("rotation", "num_objects") if f in words)
        return f"a photo of {text}" if template == 3 else text
    if template == 1:
        head = " ".join([words[f] for f in ("colour",) if f in words] + [noun])
        rest = [words[f] for f in ("size", "position", "rotation", "num_objects") if f in words]
        return ", ".join([head, *rest])
    if template == 2:
        sentences = [f"there is {_article(noun)} {noun}."]
        sentences += [f"it is {words[f]}." for f in ("colour", "size") if f in words]
        if "position" in words:
            sentences.append(f"it is in the {words['position']}.")
        sentences += [f"it is {words[f]}." for f in ("rotation", "num_objects") if f in words]
        return " ".join(sentences)
    tags = [words[f] for f in CAPTION_FACTORS if f in words]
    return "; ".join(tags) if tags else noun


def parse_caption(text: str) -> dict[str, int]:
    """Read back the caption factors a caption mentions.

    Args:
        text: a caption written by `write_caption` (any other text is read the same way).

    Returns:
        ``{caption factor: value index}`` for every factor the caption mentions.

    Raises:
        ValueError: if the text names two different values of one factor.
    """
    found: dict[str, int] = {}
    for match in _PATTERN.finditer(text.lower()):
        factor, value = _PHRASES[match.group(1)]
        if found.get(factor, value) != value:
            raise ValueError(f"caption names two values of {factor!r}: {text!r}")
        found[factor] = value
    return found


def caption_values(factors: dict[str, np.ndarray], mentions: np.ndarray, row: int) -> dict[str, int]:
    """``{caption factor: value}`` of the mentioned factors of one row of a factor batch."""
    values = {}
    for j, factor in enumerate(CAPTION_FACTORS):
        if mentions[row, j]:
            value = int(factors[CAPTION_LABELS[factor]][row])
            values[factor] = value - 1 if factor == "num_objects" else value
    return values
