"""The fenced code blocks of a Markdown page, for the tests that run the docs as written."""

import re
from pathlib import Path


DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCED_BLOCK = re.compile(r"^```(?P<language>\w+)\n(?P<code>.*?)^```$", re.M | re.S)


def fenced_blocks(page: Path, language: str) -> list[str]:
    """The code of the blocks of `page` fenced as `language`, in order."""
    return [match["code"] for match in FENCED_BLOCK.finditer(page.read_text()) if match["language"] == language]
