"""The tokenizer a run uses: named in the config, or a BPE trained on the run's own captions and saved."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch.utils.data import Dataset, IterableDataset

from infomug.data import ShapesWorld, Tokenizer, build_tokenizer
from infomug.data.survey import iter_samples

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"


def training_captions(dataset: Dataset | IterableDataset, count: int) -> list[str]:
    """Up to ``count`` captions of ``dataset`` (the world's without rendering images)."""
    if isinstance(dataset, ShapesWorld):
        return dataset.captions_and_labels(range(min(count, len(dataset))))[0]
    return [sample["caption"] for sample in iter_samples(dataset, count)]


def run_tokenizer(
    name: str,
    vocab_size: int,
    run_dir: Path,
    dataset: Dataset | IterableDataset,
    path: str | None = None,
    train_captions: int = 20000,
    write: bool = True,
) -> tuple[Tokenizer, Path | None]:
    """The run's tokenizer and the JSON file that holds it (None for the fixed ``clip``/``byte`` ones).

    ``name`` is resolved already (``TokenizerConfig.resolve``): ``"bpe"``, ``"clip"`` or ``"byte"``.

    A ``bpe`` tokenizer is loaded from ``path``, else from ``RUN/tokenizer.json`` (a resumed run), else
    trained on ``train_captions`` training captions with ``vocab_size`` ids and saved there (by the main
    process: ``write=False`` on the others, which load it after a barrier).

    Raises:
        ValueError: for an unknown name, or a tokenizer with more ids than the model's ``vocab_size``.
        FileNotFoundError: if ``path`` is given but missing.
    """
    file: Path | None = None
    if name == "bpe":
        if path is not None:
            if not Path(path).is_file():
                raise FileNotFoundError(f"tokenizer.path {path} does not exist")
            file = Path(path)
        else:
            file = run_dir / TOKENIZER_FILE
        if not file.is_file() and write:
            captions = training_captions(dataset, train_captions)
            logger.info("training a BPE tokenizer (%d ids) on %d captions", vocab_size, len(captions))
            trained = build_tokenizer("bpe", captions=captions, vocab_size=vocab_size)
            # Written under another name and renamed, so a kill never leaves a half file to load next time.
            partial = file.with_name(file.name + ".partial")
            file.parent.mkdir(parents=True, exist_ok=True)
            trained.save(partial)
            os.replace(partial, file)
        tokenizer = build_tokenizer("bpe", path=file)
    else:
        tokenizer = build_tokenizer(name)
    if tokenizer.vocab_size > vocab_size:
        raise ValueError(
            f"the {name} tokenizer has {tokenizer.vocab_size} ids but model.vocab_size is {vocab_size}:"
            f" set model.vocab_size >= {tokenizer.vocab_size} or use tokenizer.name=bpe"
        )
    return tokenizer, file
