"""The course's helper library: streaming loaders, throughput measurement and verification records."""
from .epoch_plan import EpochPlan
from .mmap_shards import MmapShardDataset
from .shard_index import ShardError, count_samples, index_shards

__all__ = ["EpochPlan", "MmapShardDataset", "ShardError", "count_samples", "index_shards"]
