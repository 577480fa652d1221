"""The help layout of every ``infomug`` command: its description wrapped, then example command lines.

commands.add_parser("train", help=..., description=..., **with_examples("infomug train --out runs/mug"))
"""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLES_HEADING = "examples:"


class ExamplesHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps descriptions as argparse's default formatter does, and prints the examples epilog as written
    (one command per line, however long)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES_HEADING):
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def with_examples(*commands: str) -> dict[str, Any]:
    """The ``add_parser`` (or ``ArgumentParser``) keywords of an epilog listing ``commands``."""
    epilog = "\n".join([EXAMPLES_HEADING, *(f"  {command}" for command in commands)])
    return {"formatter_class": ExamplesHelpFormatter, "epilog": epilog}
