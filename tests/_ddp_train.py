"""Driver for the 2-process tests: ``python tests/_ddp_train.py DATA_DIR OUT_DIR [STRATEGY [ACCELERATOR]]``.

Lightning's DDP launcher re-runs this script for rank 1. Each rank writes OUT_DIR/rank<r>.json
with a digest of every batch it trained on and of its final weights.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback

from training.config import load_config
from training.run import run


class RecordRank(Callback):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.batches: list[str] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.batches.append(hashlib.sha256(batch["input_ids"].numpy().tobytes()).hexdigest())

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        weights = None
        if not trainer.strategy.__class__.__name__.startswith("FSDP"):
            # This rank's own replica: DDP keeps the replicas equal, which is what is checked.
            digest = hashlib.sha256()
            for name, tensor in sorted(pl_module.encoder.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            weights = digest.hexdigest()
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "batches": self.batches,
            "weights": weights,
        }
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def main() -> None:
    torch.set_num_threads(1)
    data_dir, out_dir = sys.argv[1], Path(sys.argv[2])
    strategy = sys.argv[3] if len(sys.argv) > 3 else "ddp"
    accelerator = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    out_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(
        "tiny",
        values={
            "data.dir": data_dir,
            "trainer.out_dir": str(out_dir),
            "trainer.accelerator": accelerator,
            "trainer.devices": 2,
            "trainer.strategy": strategy,
            "trainer.progress": False,
            "trainer.val_check_interval": 3,
            "trainer.checkpoint_every": 3,
            "trainer.log_every": 2,
            "optim.max_steps": 6,
            "optim.batch_size": 8,
        },
    )
    run(config, command=sys.argv, callbacks=[RecordRank(out_dir)])


if __name__ == "__main__":
    main()
