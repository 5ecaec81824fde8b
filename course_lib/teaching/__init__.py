"""Teaching: the naive loaders the course warns against (the seed chapter's code, load-everything, one file per
sample, a folder of images), kept runnable so the chapters can measure them. Nothing here is meant to be copied.
Names are imported on first use."""
from .._exports import lazy_exports, table

__all__, __getattr__, __dir__ = lazy_exports(__name__, table("""
    naive: SEED_STREAMING_SOURCE SEED_EPOCH_ITERATOR_SOURCE exec_seed_code SeedStreamingDataset SeedStreamingTensors
    naive: LoadAllDataset PerSampleFileDataset export_per_sample_files ImageFolderDataset
    worker_draws: draws_by_worker
    seed_jpeg: SEED_WEBDATASET_SOURCE seed_jpeg_pipeline seed_style_shard
"""))
