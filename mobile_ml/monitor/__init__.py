"""Monitoring the fleet: the baseline a model ships with, the counts devices keep against it, and the statistics
that compare them. Only counts leave a device (docs/monitoring.md)."""

from mobile_ml.monitor.aggregate import Aggregator, check_against_baseline, merge, read_upload, state_file
from mobile_ml.monitor.baseline import BASELINE_FILE, baseline_for_run, build_baseline, write_baseline
from mobile_ml.monitor.stats import Comparison, Thresholds, Verdict, compare, js_distance, psi, verdict

__all__ = [
    "BASELINE_FILE",
    "Aggregator",
    "Comparison",
    "Thresholds",
    "Verdict",
    "baseline_for_run",
    "build_baseline",
    "check_against_baseline",
    "compare",
    "js_distance",
    "merge",
    "psi",
    "read_upload",
    "state_file",
    "verdict",
    "write_baseline",
]
