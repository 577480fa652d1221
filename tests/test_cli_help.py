"""Every ``infomug`` command's ``--help`` ends with example command lines, and each example parses."""

import argparse
import shlex

import pytest

from infomug.cli import build_parser
from infomug.cli_help import EXAMPLES_HEADING


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _examples(text: str) -> list[str]:
    assert EXAMPLES_HEADING in text, "no examples"
    lines = text.split(EXAMPLES_HEADING, 1)[1].strip().splitlines()
    return [line.partition("#")[0].strip() for line in lines]


@pytest.mark.parametrize("command", [None, *_subcommands()])
def test_help_ends_with_examples_that_parse(command):
    parser = build_parser() if command is None else _subcommands()[command]
    text = parser.format_help()
    assert "%%" not in text, "a literal %% in a string argparse does not %-format"
    examples = _examples(text)
    assert 1 <= len(examples) <= 3
    for example in examples:
        words = shlex.split(example)
        words = words[words.index("infomug") + 1 :]  # `torchrun ... -m infomug train ...` too
        if words == ["train", "--help"]:
            continue
        assert command is None or words[0] == command, example
        build_parser().parse_args(words)  # exits 2 naming the problem if the example is wrong


def test_the_description_is_still_wrapped(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal's width
    text = _subcommands()["train"].format_help()
    assert max(len(line) for line in text.split(EXAMPLES_HEADING)[0].splitlines()) <= 80


def test_entropy_methods_are_explained():
    text = _subcommands()["entropy"].format_help()
    assert all(f"{name}:" in text for name in ("kl", "discrete", "gaussian"))
