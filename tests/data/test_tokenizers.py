"""Tokenizers: round trips, special ids, truncation that keeps eos, CLIP ids equal to open_clip.tokenize,
and a trained BPE that is deterministic and survives save/load."""

import pickle

import pytest
import torch

from infomug.data.tokenizers import (
    ByteTokenizer,
    ClipBPETokenizer,
    TokenBatch,
    Tokenizer,
    TrainedBPETokenizer,
    build_tokenizer,
    encode_batch,
)

CAPTIONS = [
    "a small red circle at the top left",
    "a large blue square at the bottom right",
    "two green triangles on a grey background",
    "a small blue circle next to a red square",
] * 10


@pytest.fixture(scope="module")
def clip():
    return ClipBPETokenizer()


@pytest.fixture(scope="module")
def bpe():
    return TrainedBPETokenizer.train(CAPTIONS, vocab_size=300)


def test_byte_round_trip_and_special_ids():
    tokenizer = ByteTokenizer()
    assert isinstance(tokenizer, Tokenizer)
    text = "naïve café, 3 dogs"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    batch = encode_batch(tokenizer, ["ab", ""], context_length=6)
    assert batch.tokens.tolist() == [[256, 97, 98, 257, 258, 258], [256, 257, 258, 258, 258, 258]]
    assert batch.lengths.tolist() == [4, 2]
    assert batch.padding_mask().tolist() == [[False] * 4 + [True] * 2, [False] * 2 + [True] * 4]


@pytest.mark.parametrize("name", ["byte", "clip", "bpe"])
def test_truncation_keeps_eos(name, clip, bpe):
    tokenizer = {"byte": ByteTokenizer(), "clip": clip, "bpe": bpe}[name]
    long = " ".join(CAPTIONS[:3])
    batch = encode_batch(tokenizer, [long, "a red circle"], context_length=8)
    assert batch.tokens.shape == (2, 8) and batch.tokens.dtype == torch.int64
    assert batch.lengths[0] == 8
    assert batch.tokens[0, 0] == tokenizer.bos_id and batch.tokens[0, -1] == tokenizer.eos_id
    assert batch.tokens[0, 1:7].tolist() == tokenizer.encode(long)[:6]
    short = int(batch.lengths[1])
    assert (
        batch.tokens[1, short - 1] == tokenizer.eos_id and (batch.tokens[1, short:] == tokenizer.pad_id).all()
    )
    assert int(batch.tokens.max()) < tokenizer.vocab_size and int(batch.tokens.min()) >= 0


def test_clip_ids_match_open_clip_tokenize(clip):
    import open_clip

    texts = ["A photo of a Dog!", "  two   cats\non a sofa ", "naïve café", " ".join(CAPTIONS[:4])]
    reference = open_clip.tokenize(texts, context_length=77)
    ours = encode_batch(clip, texts, context_length=77)
    assert torch.equal(ours.tokens, reference)  # both pad with 0
    assert ours.lengths.tolist() == [int((row != 0).sum()) for row in reference]
    assert (clip.vocab_size, clip.bos_id, clip.eos_id, clip.pad_id) == (49408, 49406, 49407, 0)
    assert clip.decode([0]) == "!"  # the pad id is a real token: mask by lengths
    assert clip.decode([clip.bos_id, *clip.encode("A photo of a Dog"), clip.eos_id]) == "a photo of a dog"


def test_trained_bpe_round_trip_special_ids_and_compression(bpe):
    assert isinstance(bpe, Tokenizer) and bpe.name == "bpe"
    assert (bpe.pad_id, bpe.bos_id, bpe.eos_id) == (0, 2, 3) and bpe.vocab_size == 300
    caption = CAPTIONS[0]
    ids = bpe.encode(caption)
    assert bpe.decode([bpe.bos_id, *ids, bpe.eos_id]) == caption
    assert len(ids) < len(caption) / 2  # merges learned from the captions
    assert bpe.decode(bpe.encode("Ünseen Wörds 42!")) == "ünseen wörds 42!"  # lowercased, no <unk>
    assert bpe.unk_id not in bpe.encode("Ünseen Wörds 42! 日本")


def test_trained_bpe_is_deterministic_and_survives_save_load(bpe, tmp_path):
    again = TrainedBPETokenizer.train(CAPTIONS, vocab_size=300)
    path = tmp_path / "tokenizer.json"
    bpe.save(path)
    loaded = TrainedBPETokenizer.load(path)
    for text in [*CAPTIONS[:4], "something new entirely"]:
        assert again.encode(text) == bpe.encode(text) == loaded.encode(text)
    assert loaded.vocab_size == bpe.vocab_size
    again.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == path.read_text()


def test_trained_bpe_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size must be >= 260"):
        TrainedBPETokenizer.train(CAPTIONS, vocab_size=100)
    with pytest.raises(ValueError, match="no non-empty caption"):
        TrainedBPETokenizer.train(["", "  "])
    with pytest.raises(ValueError, match="not a single string"):
        TrainedBPETokenizer.train("a caption")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        TrainedBPETokenizer.load(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="junk.json is not a tokenizers JSON"):
        TrainedBPETokenizer.load(tmp_path / "junk.json")


def test_build_tokenizer(tmp_path, bpe):
    assert isinstance(build_tokenizer("byte"), ByteTokenizer)
    assert build_tokenizer("clip").vocab_size == 49408
    path = tmp_path / "run" / "tokenizer.json"
    path.parent.mkdir()
    trained = build_tokenizer("bpe", path=path, captions=CAPTIONS, vocab_size=300)
    assert path.is_file() and trained.encode(CAPTIONS[1]) == bpe.encode(CAPTIONS[1])
    reloaded = build_tokenizer("bpe", path=path)  # no captions needed once saved
    assert reloaded.encode(CAPTIONS[2]) == bpe.encode(CAPTIONS[2])
    with pytest.raises(ValueError, match="needs a saved tokenizer file or captions"):
        build_tokenizer("bpe")
    with pytest.raises(ValueError, match="nothing.json does not exist"):
        build_tokenizer("bpe", path=tmp_path / "nothing.json")
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt2'"):
        build_tokenizer("gpt2")


@pytest.mark.parametrize("name", ["byte", "clip", "bpe"])
def test_tokenizers_pickle_for_worker_processes(name, clip, bpe):
    tokenizer = {"byte": ByteTokenizer(), "clip": clip, "bpe": bpe}[name]
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.encode(CAPTIONS[3]) == tokenizer.encode(CAPTIONS[3])


def test_token_batch_moves_devices():
    batch = encode_batch(ByteTokenizer(), ["x"], context_length=4)
    moved = batch.to("cpu")
    assert isinstance(moved, TokenBatch) and torch.equal(moved.tokens, batch.tokens)
