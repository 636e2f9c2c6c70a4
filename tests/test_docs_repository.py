"""The docs describe the code that is here: every study.yaml key is in docs/study-config.md, the derivation
order in docs/architecture.md is the pipeline's, and no doc or docstring names a path outside the repository."""
from __future__ import annotations

import re
from pathlib import Path

from safety.core.config import DEFAULTS
from safety.derive.pipeline import ORDER

ROOT = Path(__file__).resolve().parents[1]


def _paths(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "sites":
            out += _paths(v, f"{prefix}{k}.")
        else:
            out.append(prefix + k)
    return out


def test_every_study_yaml_key_is_documented():
    doc = (ROOT / "docs" / "study-config.md").read_text(encoding="utf-8")
    missing = [p for p in _paths(DEFAULTS) if f"`{p}`" not in doc]
    assert missing == []
    assert "docs/study-config.md" in (ROOT / "safety" / "core" / "config.py").read_text(encoding="utf-8")


def test_architecture_lists_the_derivations_in_pipeline_order():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = doc.split("## The derivation graph", 1)[1].split("```", 2)[1]
    named = [line.split()[0] for line in block.strip().splitlines()]
    assert named == [d.name for d in ORDER]


def test_no_doc_or_docstring_names_a_path_outside_the_repository():
    files = [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *(ROOT / "sample_data").glob("*.md"),
             *(ROOT / "safety").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py"),
             *(ROOT / "benchmarks").rglob("*.py")]
    outside = re.compile(r"\.\./shared|/work/|clinical-rules\.md")
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in files for n, line in
            enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if outside.search(line)]
    assert hits == []
