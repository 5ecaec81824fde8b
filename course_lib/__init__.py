"""The course's helper library. Notebooks import from here only; each name lives in one role folder:

- ``loaders/``  plan an epoch and read it: memory-mapped shards, WebDataset tars, HTTP, the device
- ``measure/``  throughput, memory, page-cache ceilings, order statistics, epoch boundaries, the benchmark
- ``teaching/`` the naive loaders the course warns against (the seed chapter's code), kept to be measured
- ``course/``   verification records, tables, plots, the course runner and the JupyterLab launcher
- ``distributed/`` torchrun ranks, the end-of-epoch hang and its fixes, shards on an S3 API, scaling on paper
"""
# loaders: plan -> index -> read -> batch -> (workers) -> device
from .loaders.epoch_plan import EpochPlan
from .loaders.keyed_rng import keyed_rng
from .loaders.shard_errors import ErrorLog, MissingShardError, ShardError, ShardFormatError, ShardReadError
from .loaders.shard_index import ShardExpectation, count_samples, index_shards, manifest_counts, manifest_shards
from .loaders.mmap_shards import MmapShardDataset
from .loaders.seeding import SharedEpoch, seed_everything, seed_worker, worker_rng
from .loaders.webdataset_pipeline import ShardPipeline, make_block_webdataset, make_webdataset, shard_urls
from .loaders.http_shards import ShardServer, serve_shards
from .loaders.device_transfer import DeviceLoader, compare_modes, default_device
# measure: numbers from this machine
from .measure.throughput import SEED_BAR, ThroughputResult, measure_throughput
from .measure.memory import MemorySnapshot, PeakMemory, available_mb, memory_snapshot
from .measure.page_cache import (cold_read_mb_per_s, evict, memcpy_mb_per_s, page_cache_mb_per_s,
                                  resident_fraction)
from .measure.cold_cache import cold_runs
from .measure.shuffle_frontier import FRONTIER_SETTINGS, measure_shuffle_frontier
from .measure.shuffle_quality import arrival_order, shuffle_quality
from .measure.order_fingerprint import (Coverage, coverage, epoch_order, fingerprint_runs,
                                        fingerprint_runs_in_fresh_process,
                                        fingerprints_in_fresh_process, order_fingerprint)
from .measure.epoch_boundaries import EpochTiming, time_epochs
# teaching: what the course warns against
from .teaching.naive import (SEED_EPOCH_ITERATOR_SOURCE, SEED_STREAMING_SOURCE, LoadAllDataset, PerSampleFileDataset,
                             SeedStreamingDataset, SeedStreamingTensors, exec_seed_code, export_per_sample_files,
                             load_shards_measuring_memory)
from .teaching.worker_draws import RandomDraws, draws_by_worker
# course: records, tables and plots of what was measured
from .course.verification import environment_summary, load_records, start_chapter, verification_checkpoint
from .course.tables import Table, results_table
from .course.prose import SOURCED, cite, say
from .course.plots import (data_wait_bars, epoch_start_bars, image_grid, memory_bars, memory_growth_plot, plot_plan,
                           plot_records, regime_bars, shuffle_buffer_plot, shuffle_frontier, throughput_bars,
                           workers_scaling)
from .course.resume_run import resumable_loader, resume_in_fresh_process
# your own data (chapter 07): the plain folder loader it starts from, the img tars it converts to
from .loaders.image_tars import make_image_webdataset
from .teaching.naive import ImageFolderDataset
# chapter 05: the decode-bound regime, the training step, the peer libraries
from .loaders.image_transforms import TrainTransform, finish_batch
from .loaders.image_pipeline import ImageShardDataset, ImageShardError, image_shards, read_image_shard
from .teaching.seed_jpeg import SEED_WEBDATASET_SOURCE, seed_jpeg_pipeline, seed_style_shard
from .measure.process_memory import PeakPss, pss_snapshot
from .measure.training_step import DataWait, TrainingStep, data_wait
from .measure.regimes import (LoaderSpec, best, copy_bound_spec, course_specs, image_data, jpeg_bytes_per_sample, measure_specs,
                              order_quality, regime_goals, row_result)
from .course.regime_tables import beside_reference, feed_table, goals_markdown, regime_table, transfer_beside
from .course.reference_figures import H100, reference_figures, worker_scaling
from .measure.peer_runner import PEER_LIBRARIES, run_peer, run_peers
from .course.exercises import NotSolved, solved
# distributed: torchrun ranks, object storage, scaling on paper (chapter 06)
from .distributed.launch import LaunchResult, torchrun
from .distributed.rank_checks import ranks_disjoint, run_report, same_order
from .distributed.s3_shards import (ObjectStoreError, S3Endpoint, S3Opener, S3Server, brace_pattern, s3_scheme,
                                    s3_server, upload_shards)
from .distributed.shard_cache import CachedOpener
from .distributed.scaling import (min_shard_bytes, scaling_rows, scaling_table, time_file, time_http, time_s3,
                                  timing_table)

__all__ = [
    # loaders
    "EpochPlan", "keyed_rng", "ErrorLog", "ShardError", "MissingShardError", "ShardFormatError", "ShardReadError",
    "ShardExpectation", "count_samples", "index_shards", "manifest_counts", "manifest_shards", "MmapShardDataset",
    "SharedEpoch", "seed_everything", "seed_worker", "worker_rng",
    "ShardPipeline", "make_block_webdataset", "make_webdataset", "shard_urls", "ShardServer", "serve_shards",
    "DeviceLoader", "compare_modes", "default_device",
    # measure
    "SEED_BAR", "ThroughputResult", "measure_throughput", "MemorySnapshot", "PeakMemory", "available_mb",
    "memory_snapshot", "evict", "page_cache_mb_per_s", "resident_fraction", "arrival_order", "shuffle_quality",
    "memcpy_mb_per_s", "cold_read_mb_per_s", "cold_runs", "FRONTIER_SETTINGS", "measure_shuffle_frontier",
    "Coverage", "coverage", "epoch_order", "fingerprint_runs", "fingerprint_runs_in_fresh_process",
    "fingerprints_in_fresh_process", "order_fingerprint",
    "EpochTiming", "time_epochs",
    # teaching
    "SEED_EPOCH_ITERATOR_SOURCE", "SEED_STREAMING_SOURCE", "LoadAllDataset", "PerSampleFileDataset",
    "SeedStreamingDataset", "SeedStreamingTensors", "exec_seed_code", "export_per_sample_files",
    "load_shards_measuring_memory", "RandomDraws", "draws_by_worker",
    # course
    "environment_summary", "load_records", "start_chapter", "verification_checkpoint", "Table", "results_table",
    "SOURCED", "cite", "say",
    "epoch_start_bars", "image_grid", "memory_bars", "memory_growth_plot", "plot_plan", "shuffle_buffer_plot",
    "throughput_bars", "resumable_loader", "resume_in_fresh_process",
    # chapter 05
    "TrainTransform", "finish_batch", "ImageShardDataset", "ImageShardError", "image_shards", "read_image_shard",
    "SEED_WEBDATASET_SOURCE", "seed_jpeg_pipeline", "seed_style_shard", "PeakPss", "pss_snapshot", "DataWait",
    "TrainingStep", "data_wait", "LoaderSpec", "best", "copy_bound_spec", "course_specs", "image_data", "jpeg_bytes_per_sample",
    "measure_specs", "order_quality", "regime_goals", "regime_table", "row_result", "PEER_LIBRARIES", "run_peer",
    "run_peers", "data_wait_bars", "plot_records", "regime_bars", "shuffle_frontier", "workers_scaling",
    "goals_markdown", "H100", "reference_figures", "worker_scaling", "beside_reference", "feed_table",
    "transfer_beside",
    # distributed
    "LaunchResult", "torchrun", "ranks_disjoint", "run_report", "same_order", "ObjectStoreError", "S3Endpoint",
    "S3Opener", "S3Server", "brace_pattern", "s3_scheme", "s3_server", "upload_shards", "CachedOpener",
    "min_shard_bytes", "scaling_rows", "scaling_table", "time_file", "time_http", "time_s3",
    "timing_table",
]
__all__ += ["make_image_webdataset",     # loaders
            "ImageFolderDataset",        # teaching
            "NotSolved", "solved"]       # course: the exercise mechanism
