"""docs/api-reference.md is the served OpenAPI document, rendered; it must not drift."""

from __future__ import annotations

from pathlib import Path

from procward import __version__
from procward.api._openapi import openapi_document, reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-reference.md"


def test_reference_matches_the_document() -> None:
    """docs/api-reference.md is exactly the served OpenAPI document rendered."""
    assert DOC.read_text(encoding="utf-8") == reference_markdown(openapi_document(__version__)), \
        "run scripts/api-reference to regenerate docs/api-reference.md"
