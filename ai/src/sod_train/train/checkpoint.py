"""The training checkpoint: one dataclass, one writer (:meth:`Checkpoint.save`), one reader.

A checkpoint holds everything needed to carry on bit-exactly (weights, EMA, optimizer,
scheduler, history, best so far; the augmentation RNG is derived from (seed, epoch,
rank), so it needs no state) and everything export needs (:meth:`Checkpoint.result`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sod_train import atomicio
from sod_train.errors import UserInputError
from sod_train.train.config import TrainConfig, TrainResult

FORMAT = "sod-train-checkpoint-1"
NAME = "last.pt"  # the file inside a --checkpoint-dir


@dataclass
class Best:
    """The best validation epoch so far and its (EMA, when on) weights."""

    epoch: int = 0
    val_iou: float = -1.0
    val_iou_batch: float = -1.0
    state: dict[str, torch.Tensor] | None = None


@dataclass
class Checkpoint:
    """The state after ``epoch``; saved as a plain dict of tensors and lists (weights_only)."""

    config: TrainConfig
    epoch: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    history: list[dict[str, Any]]
    best: Best
    data: dict[str, Any]
    environment: dict[str, Any]
    ema: dict[str, Any] | None = None

    def save(self, path: Path) -> None:
        """Atomically write the checkpoint (a crash mid-write keeps the previous one)."""
        state: dict[str, Any] = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "history": self.history,
            "best_epoch": self.best.epoch,
            "best_val_iou": self.best.val_iou,
            "best_val_iou_batch": self.best.val_iou_batch,
            "best_state": self.best.state,
            "data": self.data,
            "environment": self.environment,
        }
        if self.ema is not None:
            state["ema"] = self.ema
        with atomicio.atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read a checkpoint written by :meth:`save`; UserInputError naming the file if unusable."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code
        except FileNotFoundError:
            raise UserInputError(f"{path}: checkpoint not found") from None
        except Exception as exc:  # torch.load raises many types on a bad file
            raise UserInputError(
                f"{path}: not a sod-train checkpoint ({exc.__class__.__name__})"
            ) from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise UserInputError(f"{path}: not a sod-train checkpoint")
        try:
            return cls(
                config=TrainConfig.from_dict(state["config"]),
                epoch=state["epoch"],
                model=state["model"],
                optimizer=state["optimizer"],
                scheduler=state["scheduler"],
                history=state["history"],
                best=Best(
                    state["best_epoch"],
                    state["best_val_iou"],
                    state["best_val_iou_batch"],
                    state["best_state"],
                ),
                data=state["data"],
                environment=state["environment"],
                ema=state.get("ema"),
            )
        except (KeyError, TypeError, UserInputError) as exc:
            raise UserInputError(f"{path}: not usable by this sod-train ({exc})") from None

    def result(self) -> TrainResult:
        """What export needs: the recipe and the best weights."""
        if self.best.state is None:
            raise UserInputError("the checkpoint holds no validated epoch")
        return TrainResult(
            config=self.config,
            best_state=self.best.state,
            best_epoch=self.best.epoch,
            best_val_iou=self.best.val_iou,
            best_val_iou_batch=self.best.val_iou_batch,
            history=self.history,
            data=self.data,
            environment=self.environment,
            finished=self.epoch >= self.config.epochs,
        )
