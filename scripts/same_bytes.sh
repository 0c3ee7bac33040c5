#!/usr/bin/env bash
# Train the quickstart recipe at REV (a worktree) and at this checkout, same data, same
# machine, and print both ONNX sha256: a refactor that changes no graph prints one value.
#   scripts/same_bytes.sh REV [extra train options for this checkout, e.g. --working-size 0]
# The quickstart recipe is the anchor's: `--preset anchor` on each side that has the name
# (before it became so, the anchor's recipe was the default and had no such preset).
set -euo pipefail
rev=${1:?usage: scripts/same_bytes.sh REV [train options]}; shift
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); trap 'git -C "$here" worktree remove --force "$work/before" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$here" worktree add --detach "$work/before" "$rev" -q
PYTHONPATH="$here/ai/src" python -c "from sod_train.data.synthetic import make_synthetic_duts as m; m('$work/data', n=160, size=(72, 96))"
args=(train --duts-root "$work/data" --epochs 6 --batch-size 16 --lr 0.003 --crop-size 64 --device cpu --quiet --min-val-iou 0)
anchor() { grep -q '"anchor":' "$1/ai/src/sod_train/train/presets.py" && echo --preset anchor || true; }
(cd "$work/before" && PYTHONPATH="$work/before/ai/src" python -c "from sod_train.cli.main import main; main()" "${args[@]}" $(anchor "$work/before") --output "$work/before.onnx" --checkpoint-dir "$work/ck1")
(cd "$here" && PYTHONPATH="$here/ai/src" python -c "from sod_train.cli.main import main; main()" "${args[@]}" $(anchor "$here") --output "$work/after.onnx" --checkpoint-dir "$work/ck2" "$@")
sha256sum "$work/before.onnx" "$work/after.onnx" | sed "s#$work/##"
