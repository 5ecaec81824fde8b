"""Beyond one process: torchrun ranks, the end-of-epoch hang and its fixes, shards on an S3 API, scaling on paper.

- ``ddp_stream``  ``python -m course_lib.distributed.ddp_stream``: the training script torchrun launches
- ``launch``      run torchrun as a subprocess with a hard timeout; read back the result and each rank's state
- ``rank_checks`` pure checks over the ids every rank saw: exactly once, equal batch counts, order fingerprints
- ``s3_shards``   an S3 API server on 127.0.0.1 (moto), uploading shards, the ``s3://`` opener for WebDataset
- ``shard_cache`` a local copy of each remote shard, so the second epoch reads from disk
- ``scaling``     request latency and bandwidth measured here, and the shards/ranks/workers plan they imply

Names are imported on first use.
"""
from .._exports import lazy_exports, table

__all__, __getattr__, __dir__ = lazy_exports(__name__, table("""
    launch: torchrun
    rank_checks: gather_ranks_in_process ranks_disjoint run_report same_order
    s3_shards: s3_scheme s3_server upload_shards S3Opener brace_pattern
    shard_cache: CachedOpener
    scaling: min_shard_bytes scaling_rows time_file time_http time_s3
    elastic_demo: elastic_resume ElasticResume in_rank_order
    fault_drill: fault_epoch fault_cost FaultDrill
    s3_faults: s3_faulty_server
    accelerate_loader: RankLoader
    accelerate_runs: accelerate_torchrun
"""))
