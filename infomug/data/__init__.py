"""Image-caption data: the embedded shapes world, digits, readers for users' data, transforms, tokenizers.

from infomug.data import DataConfig, build_dataset, CaptionCollate, build_tokenizer
world = build_dataset(DataConfig(source="world"), split="train")   # a Dataset of Sample
"""

from .bad_samples import BadSampleCounts, is_skipped
from .build import AUGMENTATIONS, SOURCES, DataConfig, build_dataset, data_normalisation, make_transform
from .coco import CocoCaptions
from .collate import CaptionCollate
from .csv_pairs import CsvPairs
from .digits import DigitsConfig, DigitsDataset
from .imagefolder import ImageFolder
from .sample import Sample
from .tokenizers import (
    ByteTokenizer,
    ClipBPETokenizer,
    TokenBatch,
    Tokenizer,
    TrainedBPETokenizer,
    build_tokenizer,
    encode_batch,
)
from .transforms import eval_transform, pretrain_transform, two_view_transform
from .webdataset import WebDatasetShards, expand_shards
from .world import ShapesWorld, WorldConfig
from .world_shifted import ShiftedWorld, ShiftedWorldConfig

__all__ = [
    "AUGMENTATIONS",
    "SOURCES",
    "BadSampleCounts",
    "ByteTokenizer",
    "CaptionCollate",
    "ClipBPETokenizer",
    "CocoCaptions",
    "CsvPairs",
    "DataConfig",
    "DigitsConfig",
    "DigitsDataset",
    "ImageFolder",
    "Sample",
    "ShapesWorld",
    "ShiftedWorld",
    "ShiftedWorldConfig",
    "TokenBatch",
    "Tokenizer",
    "TrainedBPETokenizer",
    "WebDatasetShards",
    "WorldConfig",
    "build_dataset",
    "build_tokenizer",
    "data_normalisation",
    "encode_batch",
    "eval_transform",
    "expand_shards",
    "is_skipped",
    "make_transform",
    "pretrain_transform",
    "two_view_transform",
]
