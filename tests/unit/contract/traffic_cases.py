"""The real-traffic samples the tests are parametrized by (``../shared/traffic``, or
``$MOCKSERVER_TRAFFIC``), read at collection time."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def sample_names() -> list[str]:
    """The sample files of the manifest; one placeholder name when the corpus is missing
    (its tests then skip with the reason, through the ``traffic_dir`` fixture)."""
    default = REPO.parent / "shared" / "traffic"
    manifest = Path(os.environ.get("MOCKSERVER_TRAFFIC", default)) / "manifest.json"
    if not manifest.is_file():
        return ["<no traffic corpus>"]
    return [s["file"] for s in json.loads(manifest.read_text())["samples"]]
