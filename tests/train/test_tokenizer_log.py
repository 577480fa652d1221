from infomug.train.tokenizer import run_tokenizer


class Captions:
    """A 74-sample map-style dataset: fewer captions than the 20,000 the tokenizer may read."""

    def __len__(self):
        return 74

    def __getitem__(self, index):
        if index >= 74:
            raise IndexError(index)
        return {"image": None, "caption": f"a red square number {index}", "labels": {}}


def test_the_bpe_log_counts_the_captions_it_trained_on(tmp_path, caplog):
    with caplog.at_level("INFO", logger="infomug.train.tokenizer"):
        tokenizer, file = run_tokenizer("bpe", 300, tmp_path, Captions(), train_captions=20000)
    assert file is not None and file.is_file() and tokenizer.vocab_size <= 300
    assert "on 74 captions" in caplog.text and "20000" not in caplog.text
