"""The published JSON Schema (`protocol/schema.json`) is exactly what the models say."""

import json
from pathlib import Path

from protocol.messages import json_schema

PUBLISHED = Path(__file__).resolve().parents[2] / "protocol" / "schema.json"


def test_the_published_schema_matches_the_models() -> None:
    stale = "protocol/schema.json is stale: `switchboard schema > protocol/schema.json`"
    assert json.loads(PUBLISHED.read_text()) == json_schema(), stale
