"""The course's helper library. The names a learner types are here; every other name lives in its role package:

- ``course_lib.loaders``     plan an epoch and read it: memory-mapped shards, WebDataset tars, HTTP, images, the device
- ``course_lib.measure``     throughput, memory, page-cache ceilings, order statistics, the training step's data wait
- ``course_lib.teaching``    the naive loaders the course warns against (the seed chapter's code), kept to be measured
- ``course_lib.course``      verification records, exercises, tables, plots, the course runner and the benchmark
- ``course_lib.distributed`` torchrun ranks, the end-of-epoch hang and its fixes, shards on an S3 API, scaling
- ``course_lib.solutions``   the exercises' solutions, one module per chapter

Layers (``tests/test_layers.py``): data_gen < loaders < teaching < measure < distributed < course; a module
imports only from its own layer or below. Names are imported on first use (``import course_lib`` is cheap).
"""
import warnings

from ._exports import lazy_exports, table

# tqdm.auto (imported by accelerate, datasets, litdata) warns inside Jupyter when ipywidgets is absent; its text
# progress bars work without it, so a chapter importing those libraries after course_lib prints no warning.
warnings.filterwarnings("ignore", message="IProgress not found")

__all__, __getattr__, __dir__ = lazy_exports(__name__, table("""
    loaders.mmap_shards: MmapShardDataset
    loaders.webdataset_pipeline: make_webdataset make_block_webdataset
    loaders.image_tars: make_image_webdataset
    loaders.image_pipeline: ImageShardDataset
    loaders.http_shards: serve_shards
    loaders.device_transfer: DeviceLoader
    loaders.shard_index: index_shards
    loaders.epoch_plan: EpochPlan
    loaders.keyed_random: keyed_rng
    loaders.shard_errors: ShardError MissingShardError ShardFormatError ShardReadError
    measure.throughput: measure_throughput
    course.verification: start_chapter verification_checkpoint
    course.exercises: solved NotSolved
    course.prose: say
    course.tables: Table
"""))
