"""Lightning Fabric and Trainer with the course's rank-split loaders: every sample once? (2 CPU processes)

Lightning is not a course dependency. In a throwaway environment beside the course's pins:

    python3 -m venv /tmp/lt && .venv/bin/uv pip install --python /tmp/lt/bin/python -c constraints.txt \
        lightning numpy webdataset psutil matplotlib pyyaml torchdata
    PYTHONPATH=. /tmp/lt/bin/python -m torch.distributed.run --standalone --nproc_per_node 2 \
        tools/lightning_check.py DATA_DIR

Prints ``RESULT {"fabric mmap 0 workers": [delivered, distinct], ...}`` from rank 0.
"""
import json
import sys

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from course_lib.loaders.mmap_shards import MmapShardDataset
from course_lib.loaders.webdataset_pipeline import make_webdataset

data_dir = sys.argv[1]
fabric = L.Fabric(accelerator="cpu", devices=2, strategy="ddp")
fabric.launch()
results = {}
for name, workers in (("mmap", 0), ("mmap", 2), ("wds", 0), ("wds", 2)):
    ds = (MmapShardDataset(data_dir, batch_size=32) if name == "mmap" else make_webdataset(data_dir, batch_size=32))
    loader = fabric.setup_dataloaders(DataLoader(ds, batch_size=None, num_workers=workers))
    ids = [i for b in loader for i in b["idx"].tolist()]
    allids = [None] * fabric.world_size
    dist.all_gather_object(allids, ids)
    flat = [i for ids in allids for i in ids]
    results[f"fabric {name} {workers} workers"] = [len(flat), len(set(flat))]

class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen = []
    def training_step(self, batch, i):
        self.seen += batch["idx"].tolist()
        return self.layer(torch.ones(1, 1)).sum()
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

for name in ("mmap", "wds"):
    ds = (MmapShardDataset(data_dir, batch_size=32) if name == "mmap" else make_webdataset(data_dir, batch_size=32))
    model = M()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(ds, batch_size=None, num_workers=0))
    allids = [None] * trainer.world_size
    dist.all_gather_object(allids, model.seen)
    flat = [i for ids in allids for i in ids]
    results[f"Trainer {name} 0 workers"] = [len(flat), len(set(flat))]
if fabric.global_rank == 0:
    print("RESULT", json.dumps(results))
dist.destroy_process_group()
