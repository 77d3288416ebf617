"""Shared fixtures. Real TrackML files live in ../shared (beside the clone), never in the project."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
TRACKML = SHARED / "data" / "trackml"


@pytest.fixture(scope="session")
def shared_trackml() -> Path:
    """Folder of the real TrackML subset; tests using it skip where ../shared is absent."""
    if not (TRACKML / "event000000001-hits.csv.gz").exists():
        pytest.skip(f"real TrackML data not found at {TRACKML} (../shared is only beside CI's clone)")
    return TRACKML


@pytest.fixture(scope="session")
def shared_score_tool():
    """The independent TrackML score implementation in ../shared/tools (needs pandas)."""
    path = SHARED / "tools" / "trackml_score.py"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared is only beside CI's clone)")
    pytest.importorskip("pandas")
    import importlib.util

    spec = importlib.util.spec_from_file_location("trackml_score_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
