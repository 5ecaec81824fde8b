"""transformers.Trainer with the course's rank-split loaders (2 CPU processes): the naive Trainer and the recipe.

transformers is not a course dependency. In a throwaway environment beside the course's pins:

    python3 -m venv /tmp/tf && .venv/bin/uv pip install --python /tmp/tf/bin/python -c constraints.txt \
        transformers torch accelerate numpy webdataset psutil matplotlib pyyaml torchdata
    PYTHONPATH=. /tmp/tf/bin/python -m torch.distributed.run --standalone --nproc_per_node 2 \
        tools/trainer_check.py DATA_DIR OUT_DIR

Prints ``RESULT {"naive Trainer": "ReshardedError: ...", "RankTrainer 0 workers": [delivered, distinct], ...}``.
The recipe: a Trainer whose ``get_train_dataloader`` returns a ``RankLoader`` (with ``max_steps``: an iterable
loader has no length). Resuming through ``resume_from_checkpoint`` is not covered: Trainer skips batches with
accelerate's ``skip_first_batches``, which expects a DataLoader.
"""
import json
import sys

import torch
import torch.distributed as dist
from transformers import Trainer, TrainingArguments

from course_lib.distributed.accelerate_loader import RankLoader
from course_lib.loaders.mmap_shards import MmapShardDataset
from course_lib.loaders.resharding import ReshardedError

data_dir, out = sys.argv[1], sys.argv[2]

class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen = []
    def forward(self, x=None, y=None, idx=None):
        self.seen += idx.reshape(-1).tolist()
        return {"loss": self.layer(torch.ones(1, 1)).sum() * 0.0}

class RankTrainer(Trainer):
    def get_train_dataloader(self):
        return RankLoader(self.train_dataset, num_workers=self.args.dataloader_num_workers,
                          device=self.accelerator.device)

def args(workers, steps):
    return TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=32, use_cpu=True,
                             report_to=[], save_strategy="no", logging_strategy="no", dataloader_num_workers=workers,
                             remove_unused_columns=False)

results = {}
model = Model()
naive = Trainer(model=model, args=args(0, 10), train_dataset=MmapShardDataset(data_dir, batch_size=None))
try:
    naive.train()
    results["naive Trainer"] = "no error"
except ReshardedError as e:
    results["naive Trainer"] = "ReshardedError: " + str(e)[:80]
for workers in (0, 2):
    ds = MmapShardDataset(data_dir, batch_size=32)
    steps = -(-len(ds) // 32)
    model = Model()
    RankTrainer(model=model, args=args(workers, steps), train_dataset=ds).train()
    allids = [None] * dist.get_world_size()
    dist.all_gather_object(allids, model.seen)
    flat = [i for ids in allids for i in ids]
    results[f"RankTrainer {workers} workers"] = [len(flat), len(set(flat))]
if dist.get_rank() == 0:
    print("RESULT", json.dumps(results))
dist.destroy_process_group()
