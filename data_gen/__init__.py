"""Synthetic dataset generator and converter of your own data: numpy and WebDataset shards, a verified manifest."""
from .convert import ConvertError, convert
from .generate import GenerateError, generate
from .images import UnreadableImage
from .layout import ALL_FORMATS, FORMATS, record_dtype, shard_file
from .manifest import read_manifest, verify
from .sample_images import write_sample_image_folder

__all__ = ["ALL_FORMATS", "ConvertError", "FORMATS", "GenerateError", "convert", "generate", "read_manifest",
           "record_dtype", "shard_file", "UnreadableImage", "verify", "write_sample_image_folder"]
