#!/usr/bin/env python3
"""Run ``sod-train train`` under torchrun and save what every rank validated.

Test helper for ``test_levers.py::test_ema_under_torchrun_keeps_ranks_identical``:
each rank records the weights it validates (the EMA model when ``--ema`` > 0) and the
metrics it measured, after every epoch, and writes them to ``RANK_DIR/rank<R>.pt``.
Usage: ``torchrun ... ddp_rank_states.py RANK_DIR TRAIN-OPTIONS...``.
"""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ai/src"))

from sod_train.cli.main import run_standalone
from sod_train.cli.train import train
from sod_train.train import loop


def main() -> None:
    out = Path(sys.argv.pop(1))
    records: list[dict] = []
    plain_validate = loop.validate

    def recording_validate(model, data, loss_kind, device):
        metrics = plain_validate(model, data, loss_kind, device)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        records.append({"state": state, "metrics": metrics})
        return metrics

    loop.validate = recording_validate  # train() looks it up at call time
    try:
        run_standalone(train, prog_name="ddp_rank_states.py")
    finally:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(records, out / f"rank{os.environ.get('RANK', '0')}.pt")


if __name__ == "__main__":
    main()
