"""The package cites what a clone holds: docs/ and public repositories, never the product
spec's section numbers or this project's issue numbers (a clone has neither)."""

from __future__ import annotations

import re
from pathlib import Path

import vadfeat

SRC = Path(vadfeat.__file__).parent
ROOT = SRC.parent.parent

# "SPEC section 3", "SPEC §1", "(issue 15)", "issue 21:" -- but not a public repository's
# "Roc-Ng/XDVioDet issue #15" or "tianyu0207/RTFM issue #33", which say where to look.
FORBIDDEN = re.compile(r"\bSPEC\s*(section|§)|\bissues? \d+\b")


def _hits() -> list[str]:
    return [f"{p.relative_to(SRC)}:{n}: {line.strip()}" for p in sorted(SRC.rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if FORBIDDEN.search(line)]


def test_no_docstring_cites_the_spec_or_an_issue_number() -> None:
    assert _hits() == []


def test_the_pattern_catches_what_it_forbids() -> None:
    for bad in ("Layouts (SPEC §3):", "(SPEC section 1)", "worker processes (issue 15).", "issue 21: x"):
        assert FORBIDDEN.search(bad), bad
    for fine in ("Roc-Ng/XDVioDet issue #15", "tianyu0207/RTFM issue #33", "(docs/REFERENCE.md, section 3)"):
        assert not FORBIDDEN.search(fine), fine


def test_every_cited_doc_exists() -> None:
    doc = re.compile(r"(?<![/\w])(docs/[A-Z_]+\.md|[A-Z_]+\.md)\b")  # not a URL's .../docs/X.md
    cited = {m.group(0) for p in SRC.rglob("*.py") for m in doc.finditer(p.read_text(encoding="utf-8"))}
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert cited and missing == [], missing
