"""One turn of the loop: monitor → (drift or enough labelled samples?) → capture export → retrain → export →
benchmark → publish the winner to a channel at a small rollout.

Evidence directory ``OUT/<UTC timestamp>/`` (``cycle.json`` last, once the cycle has decided):
    monitor.json    the fleet against the published baseline (mobile_ml.monitor)
    capture/        the captured labelled samples as a prepared-data directory (retraining only)
    retrain/        the challenger's run directory with retrain.json; its exports/ and benchmark/ inside
    publish.json    the release result, when the challenger was published
    cycle.json      every step, its outcome, paths and seconds (mobile_ml.cycle)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_ml.contracts import write_document
from mobile_ml.contracts.cycle import CycleReport, Outcome, Step, StepName, Trigger
from mobile_ml.errors import MobileMLError, OutputError
from mobile_ml.loop.config import NEXT_PATCH, CycleConfig

CYCLE_FILE = "cycle.json"


@dataclass(frozen=True)
class CycleResult:
    dir: Path  # the evidence directory
    report: CycleReport


@dataclass
class _Record:
    """The steps so far; each ``step`` call times one step and records what it wrote."""

    stage: Callable[[str], None]  # the step's name, as it starts
    say: Callable[[str], None]  # its outcome, once done
    steps: list[Step] = field(default_factory=list)

    def step(self, name: StepName, run: Callable[[], tuple[str, dict[str, str], Any]]) -> Any:
        self.stage(f"{name}")
        start = time.perf_counter()
        try:
            outcome, paths, value = run()
        except MobileMLError as e:  # recorded, so cycle.json says which step failed and why
            self.steps.append(Step(name, f"failed: {e.message}", round(time.perf_counter() - start, 3), {}))
            raise
        self.steps.append(Step(name, outcome, round(time.perf_counter() - start, 3), paths))
        self.say(f"  {outcome}")
        return value


Finish = Callable[..., CycleResult]


def run_cycle(
    config: CycleConfig,
    *,
    reporter: Any = None,
    say: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> CycleResult:
    """Run one cycle into a new evidence directory; the caller maps ``NOT_PUBLISHED`` to exit 3.

    ``reporter``: train/export/benchmark progress events and ``stage(name)`` as each step starts; ``say``: one
    line per step with its outcome. A step's user error is recorded in cycle.json (outcome ``failed``), then
    raised."""
    from mobile_ml.publish import keys

    keys.load_private(config.publish.key)  # a missing key is found now, not after minutes of training
    started = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    out = Path(config.cycle.out).absolute() / started.strftime("%Y%m%dT%H%M%SZ")
    if out.exists():
        raise OutputError(f"{out} already exists", hint="a cycle per second at most: run it again")
    out.mkdir(parents=True)
    quiet: Callable[[str], None] = lambda line: None  # noqa: E731
    rec = _Record(getattr(reporter, "stage", None) or quiet, say or quiet)
    c = config.cycle
    try:
        report = rec.step(StepName.MONITOR, lambda: _monitor(config, out))
        labelled = _labelled(config)
    except MobileMLError:
        shutil.rmtree(out)  # nothing was decided: no evidence directory
        raise
    trigger = _trigger(report.drift, labelled >= config.capture.min_labelled)
    base = dict(model=c.model, channel=c.channel, started=started.isoformat(), drift=report.drift, labelled=labelled)

    def finish(outcome: Outcome, reason: str, **extra: Any) -> CycleResult:
        doc = CycleReport(**base, trigger=trigger, outcome=outcome, reason=reason, steps=tuple(rec.steps), **extra)
        write_document(out / CYCLE_FILE, doc)
        return CycleResult(out, doc)

    if trigger is Trigger.NONE:
        return finish(
            Outcome.STOPPED,
            f"no drift and {labelled} labelled samples captured (fewer than min_labelled "
            f"{config.capture.min_labelled}): nothing to retrain",
        )
    try:
        return _retrain_and_publish(config, out, rec, reporter, finish)
    except MobileMLError as e:
        finish(Outcome.FAILED, f"{rec.steps[-1].name} failed: {e.message}")
        raise


def _retrain_and_publish(config: CycleConfig, out: Path, rec: _Record, reporter: Any, finish: Finish) -> CycleResult:
    c = config.cycle
    rec.step(StepName.CAPTURE, lambda: _capture(config, out))
    result = rec.step(StepName.RETRAIN, lambda: _retrain(config, out, reporter))
    if not result.report.winner:
        return finish(Outcome.NOT_PUBLISHED, f"the challenger did not win: {result.report.reason}")
    exports = rec.step(StepName.EXPORT, lambda: _export(config, out, reporter))
    if exports.recommended is None or not _gate_passes(exports):
        return finish(Outcome.NOT_PUBLISHED, "no exported variant of the challenger passed the export gate")
    if config.benchmark is not None:
        rec.step(StepName.BENCHMARK, lambda: _benchmark(config, out, reporter))
    release = rec.step(StepName.PUBLISH, lambda: _publish(config, out, exports.recommended.value))
    m = release.manifest
    version, percent = m.release.version, m.rollout.percent
    reason = f"{c.model} {version} ({exports.recommended.value}) published to {c.channel} at {percent:g} %"
    return finish(Outcome.PUBLISHED, reason, version=version, rollout=percent)


def _trigger(drift: bool, enough: bool) -> Trigger:
    if drift and enough:
        return Trigger.BOTH
    return Trigger.DRIFT if drift else Trigger.LABELLED if enough else Trigger.NONE


def _monitor(config: CycleConfig, out: Path) -> tuple[str, dict[str, str], Any]:
    from mobile_ml.monitor.report import monitor

    m, c = config.monitor, config.cycle
    report = monitor(m.db, root=c.root, model=c.model, channel=m.channel, thresholds=m.thresholds())
    write_document(out / "monitor.json", report)
    v = report.current
    drifted = [f.name for f in v.features if f.drifted]
    drifted += [name for name, h in (("(prediction)", v.prediction), ("(confidence)", v.confidence)) if h.drifted]
    what = f"drift in {', '.join(drifted) or 'an older version'}" if report.drift else "no drift"
    return f"{c.model} {v.version}: {v.count} inferences counted, {what}", {"report": "monitor.json"}, report


def _labelled(config: CycleConfig) -> int:
    """Distinct labelled samples of the model in the capture store since ``[capture] since`` (a batch re-sent
    after a lost reply counts once, as `capture export` counts them)."""
    from mobile_ml.capture.store import CaptureStore

    store = CaptureStore(config.capture.store)
    seen: set[str] = set()
    for _, batch in store.batches(config.cycle.model, config.capture.since_time()):
        seen.update(s.sample_id for s in batch.samples if s.label is not None)
    return len(seen)


def _capture(config: CycleConfig, out: Path) -> tuple[str, dict[str, str], Any]:
    from mobile_ml.capture.export import export

    c = config.capture
    seed = config.retrain.seed if config.retrain.seed is not None else 42
    counts = export(c.store, model=config.cycle.model, run=config.cycle.run, out=out / "capture",
                    since=c.since_time(), seed=seed)  # fmt: skip
    splits = ", ".join(f"{k} {v}" for k, v in counts.splits.items())
    return f"{counts.labelled} labelled samples ({splits}) from {counts.batches} batches", {"data": "capture"}, counts


def _retrain(config: CycleConfig, out: Path, reporter: Any) -> tuple[str, dict[str, str], Any]:
    from mobile_ml.train.retrain import RETRAIN_FILE, retrain

    r = config.retrain
    result = retrain(config.cycle.run, out / "capture", out / "retrain", budget_pp=r.budget, seed=r.seed,
                     reporter=reporter)  # fmt: skip
    paths = {"run": "retrain", "report": f"retrain/{RETRAIN_FILE}"}
    return f"{result.report.verdict}: {result.report.reason}", paths, result


def _export(config: CycleConfig, out: Path, reporter: Any) -> tuple[str, dict[str, str], Any]:
    from mobile_ml.export.exporter import export

    result = export(out / "retrain", config.export, reporter=reporter)
    names = ", ".join(v.variant.value for v in result.variants)
    best = result.recommended.value if result.recommended else "none"
    return f"exported {names}; recommended: {best}", {"exports": "retrain/exports"}, result


def _gate_passes(exports: Any) -> bool:
    from mobile_ml.errors import GateError
    from mobile_ml.export.report import check_gate

    try:
        check_gate(exports)
    except GateError:
        return False
    return True


def _benchmark(config: CycleConfig, out: Path, reporter: Any) -> tuple[str, dict[str, str], Any]:
    from mobile_ml.benchmark import report as benchmark_report
    from mobile_ml.benchmark.runner import run as run_benchmark

    assert config.benchmark is not None  # the caller checked
    result = run_benchmark(out / "retrain", config.benchmark, reporter=reporter)
    benchmark_report.write(result, out / "retrain" / "benchmark")
    return f"{len(result.measurements)} measurements", {"benchmark": "retrain/benchmark"}, result


def _publish(config: CycleConfig, out: Path, variant: str) -> tuple[str, dict[str, str], Any]:
    from mobile_ml.outputs import write_json
    from mobile_ml.publish.publisher import publish

    c, p = config.cycle, config.publish
    version = next_patch(c.root, c.model) if p.version == NEXT_PATCH else p.version
    release = publish(c.root, out / "retrain", model=c.model, version=version, channel=c.channel, key=p.key,
                      variant=variant, rollout=p.rollout)  # fmt: skip
    write_json(out / "publish.json", release.to_dict())
    return f"{c.model} {version} on {c.channel} at {p.rollout:g} %", {"result": "publish.json"}, release


def next_patch(root: str, model: str) -> str:
    """The newest published version of ``model`` with its patch number raised by one (pre-release dropped)."""
    from mobile_ml.monitor.report import released_versions

    newest = released_versions(root, model)[-1]
    major, minor, patch = (int(p) for p in newest.split("-")[0].split("+")[0].split("."))
    return f"{major}.{minor}.{patch + 1}"
