"""Loaders: everything that decides who reads what (the epoch plan) and reads it (memory maps, WebDataset tars,
HTTP, images, the device). A new way of reading data belongs here. Names are imported on first use."""
from .._exports import lazy_exports, table

__all__, __getattr__, __dir__ = lazy_exports(__name__, table("""
    epoch_plan: epoch_order deal EpochPlan rank_length
    keyed_random: keyed_rng
    shard_errors: ShardError MissingShardError ShardFormatError ShardReadError
    shard_index: index_shards count_samples manifest_counts manifest_shards
    mmap_shards: MmapShardDataset
    seeding: SharedEpoch seed_everything seed_worker worker_rng
    webdataset_pipeline: make_webdataset make_block_webdataset shard_urls
    http_shards: serve_shards
    device_transfer: DeviceLoader default_device
    image_tars: make_image_webdataset
    image_pipeline: ImageShardDataset ImageShardError read_image_shard
    image_transforms: TrainTransform
    shuffle_buffer: shuffled
    worker_exits: WorkerExitGuard WorkerExitError
    resume_position: delivered_positions
    retry_policy: RetryPolicy
    faulty_http: Faults serve_faulty
    shard_resume: delivered_per_shard
    resharding: ReshardedError allow_resharding
"""))
