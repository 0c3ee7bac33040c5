"""Compare two metrics JSON files for release CI: is NEW at least as good as OLD?

NEW fails (exit 1) when either file breaks the metrics schema, the host contract changed,
a data set evaluated in OLD is missing from NEW, NEW fails its own training gate while OLD
passed, or a quality metric got worse by more than ``max_drop`` (absolute): the
higher-is-better metrics dropping, MAE rising. Metrics compared: every evaluation both
files share, plus the best validation IoU of training (per image and per batch).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sod_train.contract import LOWER_IS_BETTER, QUALITY_METRICS
from sod_train.errors import joined
from sod_train.fetch.pins import canonical_digest
from sod_train.guards import read_json
from sod_train.release.schema import validate_metrics

DEFAULT_MAX_DROP = 0.005
# Differences this small are float noise from the JSON round trip, not changes.
_EPS = 1e-12
TRAINING_SECTION = "training-val"
TRAINING_METRICS = ("best_val_iou", "best_val_iou_batch")


@dataclass(frozen=True)
class Row:
    """One compared metric: where it comes from, both values and the verdict."""

    section: str
    metric: str
    old: float
    new: float
    delta: float
    verdict: str


@dataclass
class DiffReport:
    """Everything ``sod-train diff`` found; ``failures`` empty means NEW may ship."""

    old: str
    new: str
    max_drop: float
    old_model: str | None = None
    new_model: str | None = None
    schema: dict[str, list[str]] = field(default_factory=lambda: {"old": [], "new": []})
    contract_changes: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    missing_datasets: list[str] = field(default_factory=list)
    added_datasets: list[str] = field(default_factory=list)
    gate: dict[str, bool | None] = field(default_factory=lambda: {"old": None, "new": None})
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (the ``--json`` output)."""
        out = asdict(self)
        out["rows"] = [asdict(row) for row in self.rows]
        return {"passed": self.passed, **out}


def _changes(old: Any, new: Any, where: str) -> list[str]:
    """Paths under ``where`` whose value differs between two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new:
                lines.append(f"{where}.{key}: removed")
            elif key not in old:
                lines.append(f"{where}.{key}: added ({json.dumps(new[key])})")
            else:
                lines += _changes(old[key], new[key], f"{where}.{key}")
        return lines
    if old != new:
        return [f"{where}: {json.dumps(old)} -> {json.dumps(new)}"]
    return []


def _verdict(metric: str, delta: float, max_drop: float) -> str:
    """same / better / worse<=tol / REGRESSED for one metric's change."""
    worse = delta if metric in LOWER_IS_BETTER else -delta
    if worse > max_drop + _EPS:
        return "REGRESSED"
    if worse > _EPS:
        return "worse<=tol"
    return "better" if worse < -_EPS else "same"


def _compare(report: DiffReport, section: str, metric: str, old: float, new: float) -> None:
    """Append a row for one metric and a failure line if it regressed."""
    delta = new - old
    verdict = _verdict(metric, delta, report.max_drop)
    report.rows.append(Row(section, metric, old, new, delta, verdict))
    if verdict == "REGRESSED":
        moved = "rose" if metric in LOWER_IS_BETTER else "dropped"
        report.failures.append(
            f"{section} {metric} {moved} by {abs(delta):.4f} ({old:.4f} -> {new:.4f}, "
            f"tolerance {report.max_drop})"
        )


def _compare_evaluations(report: DiffReport, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Rows for every data set both files evaluated; OLD-only data sets are failures."""
    old_evals, new_evals = old.get("evaluations", {}), new.get("evaluations", {})
    report.added_datasets = [name for name in new_evals if name not in old_evals]
    for name, old_eval in old_evals.items():
        new_eval = new_evals.get(name)
        if new_eval is None:
            report.missing_datasets.append(name)
            report.failures.append(f"data set '{name}' is evaluated in OLD but missing from NEW")
            continue
        differing = [k for k in ("n", "size", "protocol") if old_eval[k] != new_eval[k]]
        if canonical_digest(old_eval["digest"]) != canonical_digest(new_eval["digest"]):
            differing.insert(0, "digest")
        if differing:
            report.notes.append(
                f"{name}: {', '.join(differing)} differ between OLD and NEW; "
                "the numbers may not be comparable"
            )
        for metric in QUALITY_METRICS:
            _compare(report, name, metric, old_eval["metrics"][metric], new_eval["metrics"][metric])


def _compare_training(report: DiffReport, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Rows for the best validation IoU, and the training gate verdicts."""
    old_data = (canonical_digest(old["data"]["digest"]), old["data"]["val"])
    if old_data != (canonical_digest(new["data"]["digest"]), new["data"]["val"]):
        report.notes.append(
            "training data or validation fold differs between OLD and NEW; "
            "validation IoU is compared anyway"
        )
    for metric in TRAINING_METRICS:
        _compare(report, TRAINING_SECTION, metric, old["training"][metric], new["training"][metric])
    old_gate, new_gate = old["gate"], new["gate"]
    report.gate = {"old": old_gate["passed"], "new": new_gate["passed"]}
    if old_gate["passed"] and not new_gate["passed"]:
        report.failures.append(
            f"NEW fails its training gate ({new_gate['metric']} {new_gate['value']:.4f} "
            f"< {new_gate['threshold']}) while OLD passed"
        )


def diff_metrics(
    old: Any, new: Any, old_name: str, new_name: str, max_drop: float = DEFAULT_MAX_DROP
) -> DiffReport:
    """Compare two parsed metrics documents (named for messages) and collect every finding."""
    report = DiffReport(old=old_name, new=new_name, max_drop=max_drop)
    old_doc = old if isinstance(old, dict) else {}
    new_doc = new if isinstance(new, dict) else {}
    report.old_model, report.new_model = old_doc.get("model_id"), new_doc.get("model_id")
    report.contract_changes = _changes(old_doc.get("contract"), new_doc.get("contract"), "contract")
    if report.contract_changes:
        more = " ..." if len(report.contract_changes) > 3 else ""
        report.failures.append(
            f"host contract changed: {'; '.join(report.contract_changes[:3])}{more}"
        )
    report.schema = {"old": validate_metrics(old), "new": validate_metrics(new)}
    for side, name in (("old", old_name), ("new", new_name)):
        problems = report.schema[side]
        if problems:
            report.failures.append(
                f"{side.upper()} {name} fails the metrics schema: {joined(problems, 3)}"
            )
    if report.schema["old"] or report.schema["new"]:
        return report
    _compare_evaluations(report, old, new)
    _compare_training(report, old, new)
    return report


def diff_files(old: Path, new: Path, max_drop: float = DEFAULT_MAX_DROP) -> DiffReport:
    """Load two metrics files (UserInputError if unreadable) and compare them."""
    old_doc, new_doc = read_json(old, "a metrics JSON"), read_json(new, "a metrics JSON")
    return diff_metrics(old_doc, new_doc, str(old), str(new), max_drop)


def format_report(report: DiffReport) -> str:
    """The human-readable side-by-side table and findings."""
    lines = [
        f"OLD {report.old} ({report.old_model or '?'})",
        f"NEW {report.new} ({report.new_model or '?'})",
        f"tolerance: {report.max_drop} absolute (MAE: rise, other metrics: drop)",
        "",
    ]
    if report.rows:
        width = max(len(row.section) for row in report.rows)
        lines.append(
            f"{'section':<{width}}  {'metric':<18}  {'old':>8}  {'new':>8}  {'delta':>8}  verdict"
        )
        for row in report.rows:
            lines.append(
                f"{row.section:<{width}}  {row.metric:<18}  {row.old:>8.4f}  {row.new:>8.4f}  "
                f"{row.delta:>+8.4f}  {row.verdict}"
            )
        lines.append("")
    if report.gate["old"] is not None:
        lines.append(
            f"training gate: OLD {_pass_word(report.gate['old'])}, "
            f"NEW {_pass_word(report.gate['new'])}"
        )
    lines.append("contract: changed" if report.contract_changes else "contract: unchanged")
    lines += [f"  {change}" for change in report.contract_changes]
    for side in ("old", "new"):
        lines += [f"schema ({side.upper()}): {problem}" for problem in report.schema[side]]
    if report.added_datasets:
        lines.append(f"new in NEW (not compared): {', '.join(report.added_datasets)}")
    lines += [f"note: {note}" for note in report.notes]
    lines.append(
        "RESULT: PASS" if report.passed else f"RESULT: FAIL ({len(report.failures)} problem(s))"
    )
    lines += [f"  - {failure}" for failure in report.failures]
    return "\n".join(lines)


def _pass_word(passed: bool | None) -> str:
    return "passed" if passed else "failed"
