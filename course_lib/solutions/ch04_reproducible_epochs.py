"""Chapter 04's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from ..course.exercises import solution


@solution("04_reproducible_epochs")
def checkpoint_by_hand(make_ds, num_workers: int):
    """Stop after 3 batches, save ``state_dict(samples_seen=...)``, resume in a new dataset: (seen, rest)."""
    from torch.utils.data import DataLoader

    from ..measure.shuffle_metrics import arrival_order

    ds, seen = make_ds(), []
    for k, batch in enumerate(DataLoader(ds, batch_size=None, num_workers=num_workers)):
        seen += batch["idx"].tolist()
        if k == 2:
            break
    state = ds.state_dict(samples_seen=len(seen))
    resumed = make_ds()
    resumed.load_state_dict(state)
    return seen, arrival_order(DataLoader(resumed, batch_size=None, num_workers=num_workers)).tolist()
