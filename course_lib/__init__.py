"""The course's helper library. Notebooks import from here only; each name lives in one role folder:

- ``loaders/``  plan an epoch and read it: memory-mapped shards, WebDataset tars, HTTP, the device
- ``measure/``  throughput, memory, page-cache ceilings, order statistics, epoch boundaries, the benchmark
- ``teaching/`` the naive loaders the course warns against (the seed chapter's code), kept to be measured
- ``course/``   verification records, tables, plots, the course runner and the JupyterLab launcher
- ``distributed/`` torchrun ranks, the end-of-epoch hang and its fixes, shards on an S3 API, scaling on paper
"""
# loaders: plan -> index -> read -> batch -> (workers) -> device
from .loaders.epoch_plan import EpochPlan
from .loaders.shard_index import ShardError, count_samples, index_shards, manifest_counts
from .loaders.mmap_shards import MmapShardDataset
from .loaders.seeding import SharedEpoch, seed_everything, seed_worker, worker_rng
from .loaders.shard_errors import ErrorLog, ShardReadError
from .loaders.webdataset_pipeline import make_block_webdataset, make_webdataset, shard_urls
from .loaders.http_shards import ShardServer, serve_shards
from .loaders.device_transfer import DeviceLoader, compare_modes, default_device
# measure: numbers from this machine
from .measure.throughput import SEED_BAR, ThroughputResult, measure_throughput
from .measure.memory import MemorySnapshot, PeakMemory, available_mb, memory_snapshot
from .measure.page_cache import evict, page_cache_mb_per_s, resident_fraction
from .measure.shuffle_quality import arrival_order, shuffle_quality
from .measure.order_fingerprint import Coverage, coverage, order_fingerprint
from .measure.epoch_boundaries import EpochTiming, time_epochs
# teaching: what the course warns against
from .teaching.naive import (SEED_EPOCH_ITERATOR_SOURCE, SEED_STREAMING_SOURCE, LoadAllDataset, PerSampleFileDataset,
                             SeedStreamingDataset, SeedStreamingTensors, exec_seed_code, export_per_sample_files,
                             load_shards_measuring_memory)
# course: records, tables and plots of what was measured
from .course.verification import environment_summary, load_records, start_chapter, verification_checkpoint
from .course.tables import Table, results_table
from .course.plots import epoch_start_bars, image_grid, memory_bars, plot_plan, throughput_bars
from .course.resume_run import resumable_loader
# distributed: torchrun ranks, object storage, scaling on paper (chapter 06)
from .distributed.launch import LaunchResult, torchrun
from .distributed.rank_checks import ranks_disjoint, run_report, same_order
from .distributed.s3_shards import (ObjectStoreError, S3Endpoint, S3Opener, S3Server, brace_pattern, s3_scheme,
                                    s3_server, upload_shards)
from .distributed.shard_cache import CachedOpener
from .course.exercises import NotSolved, solved
from .distributed.scaling import (min_shard_bytes, scaling_rows, scaling_table, time_file, time_http, time_s3,
                                  timing_table)

__all__ = [
    # loaders
    "EpochPlan", "ShardError", "count_samples", "index_shards", "manifest_counts", "MmapShardDataset",
    "SharedEpoch", "seed_everything", "seed_worker", "worker_rng", "ErrorLog", "ShardReadError",
    "make_block_webdataset", "make_webdataset", "shard_urls", "ShardServer", "serve_shards",
    "DeviceLoader", "compare_modes", "default_device",
    # measure
    "SEED_BAR", "ThroughputResult", "measure_throughput", "MemorySnapshot", "PeakMemory", "available_mb",
    "memory_snapshot", "evict", "page_cache_mb_per_s", "resident_fraction", "arrival_order", "shuffle_quality",
    "Coverage", "coverage", "order_fingerprint", "EpochTiming", "time_epochs",
    # teaching
    "SEED_EPOCH_ITERATOR_SOURCE", "SEED_STREAMING_SOURCE", "LoadAllDataset", "PerSampleFileDataset",
    "SeedStreamingDataset", "SeedStreamingTensors", "exec_seed_code", "export_per_sample_files",
    "load_shards_measuring_memory",
    # course
    "environment_summary", "load_records", "start_chapter", "verification_checkpoint", "Table", "results_table",
    "epoch_start_bars", "image_grid", "memory_bars", "plot_plan", "throughput_bars", "resumable_loader",
    # distributed
    "LaunchResult", "torchrun", "ranks_disjoint", "run_report", "same_order", "ObjectStoreError", "S3Endpoint",
    "S3Opener", "S3Server", "brace_pattern", "s3_scheme", "s3_server", "upload_shards", "CachedOpener",
    "min_shard_bytes", "scaling_rows", "scaling_table", "time_file", "time_http", "time_s3", "NotSolved", "solved",
    "timing_table",
]
