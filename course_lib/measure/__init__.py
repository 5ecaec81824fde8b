"""Measurement: throughput, memory, page-cache ceilings, order statistics (arrival order, coverage, fingerprints,
shuffle quality), epoch boundaries, the training step's data wait, the peer libraries. A new number belongs here.
Names are imported on first use."""
from .._exports import lazy_exports, table

__all__, __getattr__, __dir__ = lazy_exports(__name__, table("""
    throughput: measure_throughput ThroughputResult SEED_BAR
    memory: MemorySnapshot available_mb memory_snapshot PeakMemory
    memory_growth: load_shards_measuring_memory
    process_memory: PeakPss
    page_cache: cached_ceilings page_cache_mb_per_s memcpy_mb_per_s cold_read_mb_per_s evict resident_fraction
    cold_cache: cold_runs
    shuffle_metrics: arrival_order shuffle_quality classes_per_batch
    shuffle_frontier: measure_shuffle_frontier
    fingerprints: coverage epoch_order order_fingerprint fingerprint_runs fingerprint_runs_in_fresh_process
    epoch_boundaries: time_epochs
    transfer_modes: compare_modes
    training_step: TrainingStep data_wait
    regimes: copy_bound_spec course_specs image_data jpeg_bytes_per_sample order_quality regime_goals
    peer_runner: run_peers
    buffer_held: held_while_shuffling
    class_orders: loader_orders loader_orders_elsewhere
    long_runs: measure_warm measure_cold
    fresh_block_order: block_order_fingerprints block_order_fingerprints_in_fresh_process
    regime_runs: best row_result measure_specs LoaderSpec
    peer_torchdata: SAME_PROCESS
    lance_peer: lance_epoch_orders epoch_seed
    conversion_scale: time_conversions scale_rows cores_to_beat_local
    ray_cleanup: ray_leftovers
"""))
