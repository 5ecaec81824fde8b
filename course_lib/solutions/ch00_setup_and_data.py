"""Chapter 00's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from ..course.exercises import solution


@solution("00_setup_and_data")
def npy_header_bytes(manifest: dict, record_bytes: int) -> int:
    """Bytes of the first numpy shard that are not records: its size minus samples x record size."""
    entry = manifest["formats"]["npy"]["shards"][0]
    return entry["bytes"] - entry["samples"] * record_bytes
