"""Synthetic dataset generator: numpy shards and WebDataset tars with a verified manifest."""
from .generate import GenerateError, generate
from .layout import ALL_FORMATS, FORMATS, record_dtype, shard_file
from .manifest import read_manifest, verify

__all__ = ["ALL_FORMATS", "FORMATS", "GenerateError", "generate", "read_manifest", "record_dtype", "shard_file", "verify"]
