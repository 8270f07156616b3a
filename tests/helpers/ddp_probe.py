"""Run under torchrun (2 processes): fit a tiny model with lesionkit's fit and print, from every process, what the
validation metric saw (rows, and whether each validation row came exactly once) and the per-process batch."""
import numpy as np
import torch
from fastai.data.core import DataLoaders, TfmdDL
from fastai.metrics import AccumMetric

from lesionkit import distributed
from lesionkit.engine.fit import fit
from lesionkit.engine.learner import make_learner

distributed.init()
N_VALID, N_CLASSES = 7, 7
torch.manual_seed(0)
train = [(torch.randn(3), torch.tensor(i % N_CLASSES)) for i in range(10)]
valid = [(torch.randn(3), torch.tensor(i)) for i in range(N_VALID)]  # target = row id: each must come once
dls = DataLoaders(TfmdDL(train, bs=4, shuffle=True, num_workers=0), TfmdDL(valid, bs=4, num_workers=0), device="cpu")
seen = []


def rows_once(preds, targs):
    seen.append(sorted(int(t) for t in targs))
    return float(sorted(int(t) for t in targs) == list(range(N_VALID)))


batches = []
learn = make_learner(dls, torch.nn.Linear(3, N_CLASSES), metrics=[AccumMetric(rows_once, flatten=False)])
learn.add_cb(type("BatchSize", (__import__("fastai.callback.core", fromlist=["Callback"]).Callback,),
                  {"before_batch": lambda self: batches.append(len(self.yb[0])) if self.training else None})())
fit(learn, 2, 1e-2, "constant", monitor="rows_once", headless=True)
print(f"rank {distributed.rank()} history {learn.recorder.values}", flush=True)
print(f"rank {distributed.rank()} of {distributed.world_size()}: valid rows {len(seen[-1])} once {seen[-1] == list(range(N_VALID))} "
      f"train batch {max(batches)} model {type(learn.model).__name__}", flush=True)
