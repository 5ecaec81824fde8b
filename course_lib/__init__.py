"""The course's helper library: streaming loaders, throughput measurement and verification records."""
from .epoch_boundaries import EpochTiming, time_epochs
from .epoch_plan import EpochPlan
from .memory import MemorySnapshot, PeakMemory, available_mb, memory_snapshot
from .mmap_shards import MmapShardDataset
from .order_fingerprint import Coverage, coverage, order_fingerprint
from .seeding import SharedEpoch, seed_everything, seed_worker, worker_rng
from .shard_index import ShardError, count_samples, index_shards
from .http_shards import ShardServer, serve_shards
from .shard_errors import ErrorLog, ShardReadError
from .shuffle_quality import arrival_order, shuffle_quality
from .throughput import SEED_BAR, ThroughputResult, measure_throughput
from .verification import load_records, start_chapter, verification_checkpoint
from .webdataset_pipeline import make_block_webdataset, make_webdataset

__all__ = [
    "ErrorLog", "ShardReadError", "ShardServer", "arrival_order", "make_block_webdataset", "make_webdataset",
    "serve_shards", "shuffle_quality",
    "EpochPlan", "MemorySnapshot", "MmapShardDataset", "PeakMemory", "SEED_BAR", "ShardError", "ThroughputResult",
    "available_mb", "count_samples", "index_shards", "load_records", "measure_throughput", "memory_snapshot",
    "start_chapter", "verification_checkpoint",
    "Coverage", "EpochTiming", "SharedEpoch", "coverage", "order_fingerprint", "seed_everything", "seed_worker",
    "time_epochs", "worker_rng",
]
