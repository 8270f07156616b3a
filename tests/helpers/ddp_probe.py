"""Run under torchrun (2 processes): fit a tiny model with lesionkit's fit and print, from every process, what the
validation metric saw (rows, and whether each validation row came exactly once) and the per-process batch."""
import sys

import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders, TfmdDL
from fastai.metrics import AccumMetric

from lesionkit.parallel import distributed
from lesionkit.engine.fit import fit
from lesionkit.engine.learner import make_learner

distributed.init()
N_VALID, N_CLASSES = 7, 7
torch.manual_seed(0)
train = [(torch.randn(3), torch.tensor(i % N_CLASSES)) for i in range(10)]
valid = [(torch.randn(3), torch.tensor(i)) for i in range(N_VALID)]  # target = row id: each must come once
dls = DataLoaders(TfmdDL(train, bs=4, shuffle=True, num_workers=0), TfmdDL(valid, bs=4, num_workers=0), device="cpu")
seen: list[list[int]] = []
batches: list[int] = []


def rows_once(preds, targs) -> float:
    seen.append(sorted(int(t) for t in targs))
    return float(seen[-1] == list(range(N_VALID)))


class TrainBatchSize(Callback):
    def before_batch(self) -> None:
        if self.training:
            batches.append(len(self.yb[0]))


learn = make_learner(dls, torch.nn.Linear(3, N_CLASSES), metrics=[AccumMetric(rows_once, flatten=False)],
                     cbs=[TrainBatchSize()])
fit(learn, 2, 1e-2, "constant", monitor="rows_once", headless=True)
once = seen[-1] == list(range(N_VALID))
sys.stdout.write(f"rank {distributed.rank()} history {learn.recorder.values}\n"  # one write: the processes share
                 f"rank {distributed.rank()} of {distributed.world_size()}: valid rows {len(seen[-1])} once {once} "
                 f"train batch {max(batches)} model {type(learn.model).__name__}\n")  # one stdout
sys.stdout.flush()
