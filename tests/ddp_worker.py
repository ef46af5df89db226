"""Worker for test_pytorch_training's torchrun test: the same fit call, run on 2 processes.

Usage: python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py OUT_DIR
Each process writes its initial and final weights and what it saw to OUT_DIR.
"""
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xfer_helpers.pytorch import fit  # noqa: E402


class CountingDataset(Dataset):
    """A tensor dataset that counts how many items this process has read."""

    def __init__(self, x, y):
        self.x, self.y, self.items_seen = x, y, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.items_seen += 1
        return self.x[i], self.y[i]


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)  # the same data on every process
    y = torch.randint(0, 2, (160,), generator=g)
    x = torch.randn(160, 8, generator=g) + 3.0 * (2 * y[:, None] - 1)
    torch.manual_seed(100 + rank)  # different start weights: DDP must copy rank 0's to the others
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    torch.save(model.state_dict(), out / f"initial_rank{rank}.pt")
    train = CountingDataset(x[:128], y[:128])
    history = fit(model, DataLoader(train, batch_size=16, shuffle=True),
                  DataLoader(TensorDataset(x[128:], y[128:]), batch_size=16),
                  epochs=2, lr=1e-2, device="cpu", progress=False)
    torch.save(model.state_dict(), out / f"final_rank{rank}.pt")
    info = {"history": history.to_dict(), "train_items_seen": train.items_seen}
    for record in info["history"]["records"]:  # timings differ between processes
        record.pop("seconds"), record.pop("samples_per_second")
    (out / f"info_rank{rank}.json").write_text(json.dumps(info))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
