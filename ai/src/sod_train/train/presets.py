"""Named training recipes. ``release`` is the default; ``anchor`` is the anchor's recipe
(TrainConfig's own field defaults), kept reproducible.

A preset only sets defaults: any option given on the command line wins. Recipes
other than ``release`` and ``anchor`` are candidates for the quality work; their
measured effect is recorded in the model card once trained.
"""

from __future__ import annotations

from typing import Any

# The efficient family's recipe (issue 12): LiteUNet, BCE + soft IoU with deep
# supervision, AdamW with a linear warm-up and a per-step cosine, crop 160, selected at
# the fold's 256.
LITE: dict[str, Any] = {
    "arch": "lite",
    "widths": (16, 32, 48, 64, 80),
    "blocks": (0, 1, 2, 1, 0),
    "dilations": (1, 2, 4),
    "loss": "bce+iou",
    "optimizer": "adamw",
    "weight_decay": 1e-4,
    "lr": 4e-3,
    "schedule": "warmup-cosine",
    "warmup_epochs": 1.0,
    "deep_supervision": 0.4,
    "crop_size": 160,
    "val_crop": 256,
}

PRESETS: dict[str, dict[str, Any]] = {
    # The anchor's recipe and layout: 3 levels (16, 32, 48), BCE + Dice, Adam 1e-3,
    # cosine to 0 over 50 epochs, batch 32, crop 256. Before issue 22 it was the
    # default (named ``default``); on 2 CPU cores it takes 5-6 hours.
    "anchor": {},
    # A CPU-sized smoke recipe (minutes on 2 cores): the anchor's network at crop 128
    # for 6 epochs. Its models are labelled smoke, never released.
    "smoke-cpu": {"epochs": 6, "crop_size": 128, "lr": 2e-3},
    # More context for the same budget: a 4th encoder level and a two-branch
    # dilated bottleneck (112,313 params), BCE + soft IoU, AdamW, longer schedule.
    "context": {
        "widths": (16, 24, 32, 32),
        "dilations": (1, 3),
        "loss": "bce+iou",
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "epochs": 150,
    },
    # The ``context`` network on the default 50-epoch schedule, for ranking levers fast.
    "context-short": {
        "widths": (16, 24, 32, 32),
        "dilations": (1, 3),
        "loss": "bce+iou",
        "optimizer": "adamw",
        "weight_decay": 1e-4,
    },
    # Ablations (issue 8): each is ``anchor`` plus ONE lever, on its 50-epoch
    # schedule, so ranking them against ``anchor`` isolates that lever.
    "ablate-ema": {"ema": 0.999, "epochs": 50},
    "ablate-jitter": {"scale_jitter": 0.25, "colour_jitter": 0.2, "epochs": 50},
    "ablate-bce-iou": {"loss": "bce+iou", "epochs": 50},
    "ablate-adamw": {"optimizer": "adamw", "weight_decay": 1e-4, "epochs": 50},
    # Encoder depth alone: 4 plain levels (103,033 params).
    "ablate-deep": {"widths": (16, 24, 32, 32), "epochs": 50},
    # Depthwise-separable 3x3s let a 5-level encoder fit the budget (112,497 params).
    "ablate-separable-deep": {"widths": (16, 32, 48, 64, 96), "separable": True, "epochs": 50},
    # The levers expected to win together, on a long schedule: 5 separable levels
    # with a (1, 2, 4) dilated context block (114,753 params), BCE + soft IoU, AdamW,
    # EMA, scale + colour jitter, 200 epochs.
    "csnet-push": {
        "widths": (16, 32, 48, 64, 80),
        "dilations": (1, 2, 4),
        "separable": True,
        "loss": "bce+iou",
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "ema": 0.999,
        "scale_jitter": 0.25,
        "colour_jitter": 0.2,
        "epochs": 200,
    },
    # The efficient family (issue 12), trained on the CPU: a stride-2 stem, 5 levels
    # of separable blocks, a (1, 2, 4) dilated context block, an add-fusion
    # ConvTranspose decoder and deep supervision; AdamW with warm-up + cosine.
    # ``lite-probe`` is the 8-epoch recipe the levers were ranked with.
    "lite-probe": {**LITE, "epochs": 8},
    # The release recipe (issue 13): ``lite-probe``'s network and optimizer, 32 epochs,
    # progressive resizing (26 at crop 160, the last 6 at 224, which is the fold's
    # scale: 224 crops of images whose shorter side is 256), selected at 256 on the
    # seed-42 fold. About 50 minutes on 2 Zen 4 cores.
    "release": {
        **LITE,
        "final_crop": 224,
        "final_epochs": 6,
        "epochs": 32,
        "convert_rgb_masks": True,
    },
}
# The long release recipe (issue 22): the levers that won the fold ranking at equal
# wall-clock (docs/training.md, "Lever ranking for v2"): the structure loss and a deeper
# encoder (blocks 0,2,3,2,1: 115,669 params), on a 50-epoch schedule (40 at crop 160,
# the last 10 at 224). About 2.6 hours on 2 Zen 3 cores in fp32; resumable bit-exactly.
PRESETS["release-long"] = {
    **PRESETS["release"],
    "loss": "structure",
    "blocks": (0, 2, 3, 2, 1),
    "epochs": 50,
    "final_epochs": 10,
}
# ``release`` with the ConvTranspose head going straight to the logit (no 8-channel
# full-resolution map): 0.23x anchor v1's 1080p latency on 2 threads instead of 0.35x
# (benchmarks/RESULTS.md). Not trained or ranked yet: its fold accuracy is unknown.
PRESETS["release-fast"] = {**PRESETS["release"], "refine": 0}


# What train_saliency_student.py and `sod-train train` use without --preset: the fast
# release recipe (issue 22): under an hour on 2 Zen 4 cores with bf16, about 2 hours on
# 2 Zen 3 cores in fp32, where the anchor's recipe takes 5-6 hours.
DEFAULT_PRESET = "release"


def preset_names() -> list[str]:
    return sorted(PRESETS)
