"""The mutants ``mutation_check.py`` applies: one realistic bug each, and the tests that must catch it.

``old`` must occur exactly once in ``file``; keep it short but unique. ``tests`` are pytest node ids (a file, a
test, or ``file::test``); the fewer, the faster the check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    group: str  # "stages" (data, train, export, benchmark) or "channel" (publish, serve, client: the threat rows)
    what: str  # the bug, in words
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


B = "tests/test_benchmark.py"
E = "tests/test_export.py"
T = "tests/test_train.py"

STAGES: tuple[Mutant, ...] = (
    Mutant(
        "percentile-off-by-one-rank",
        "stages",
        "percentiles take the upper rank instead of interpolating",
        "mobile_ml/benchmark/stats.py",
        "lo = math.floor(pos)",
        "lo = math.ceil(pos)",
        (
            f"{B}::test_percentiles_interpolate_between_ranks_like_numpy",
            f"{B}::test_median_of_an_even_number_of_repeats",
        ),
    ),
    Mutant(
        "warmup-counted-as-timed",
        "stages",
        "warm-up runs reported among the timed samples",
        "mobile_ml/benchmark/runner.py",
        'samples = [float(x) for x in raw["samples_ms"]]',
        'samples = [float(x) for x in raw["warmup_ms"] + raw["samples_ms"]]',
        (f"{B}::test_warmup_runs_are_not_timed_samples",),
    ),
    Mutant(
        "depthwise-macs-as-full-conv",
        "stages",
        "a depthwise convolution counted like a full one (× input channels)",
        "mobile_ml/benchmark/macs.py",
        "_, kh, kw, _ = shape(ins[1])\n            macs = prod(out) * kh * kw\n",
        "_, kh, kw, cin = shape(ins[1])\n            macs = prod(out) * kh * kw * cin\n",
        (f"{B}::test_macs_of_depthwise_transpose_and_batch_matmul",),
    ),
    Mutant(
        "compare-judges-one-repeat",
        "stages",
        "benchmark compare gives a verdict on fewer than three repeats",
        "mobile_ml/benchmark/compare.py",
        "if min(len(base), len(new)) < MIN_REPEATS:",
        "if False:",
        (
            f"{B}::test_compare_refuses_to_judge_with_fewer_than_three_repeats",
            f"{B}::test_cli_compare_exit_codes_and_json",
        ),
    ),
    Mutant(
        "compare-without-rank-test",
        "stages",
        "a slowdown beyond the limit is a regression whatever the spread of repeats",
        "mobile_ml/benchmark/compare.py",
        "Verdict.REGRESSED if p_value <= ALPHA else Verdict.WITHIN_NOISE",
        "Verdict.REGRESSED",
        (f"{B}::test_compare_gate_trips_on_a_real_regression_only",),
    ),
    Mutant(
        "compare-without-effect-size",
        "stages",
        "any slowdown, however small, can be a regression",
        "mobile_ml/benchmark/compare.py",
        "elif change > max_regression:",
        "elif change > 0:",
        (f"{B}::test_compare_gate_trips_on_a_real_regression_only", f"{B}::test_cli_compare_exit_codes_and_json"),
    ),
    Mutant(
        "gate-on-absolute-drop",
        "stages",
        "the gate fails a variant more accurate than Keras by more than the budget",
        "mobile_ml/export/report.py",
        "parity.accuracy_drop_pp <= budget_pp + 1e-9",
        "abs(parity.accuracy_drop_pp) <= budget_pp + 1e-9",
        (f"{E}::test_gate_is_on_the_signed_drop_and_a_drop_at_the_budget_passes",),
    ),
    Mutant(
        "gate-budget-exclusive",
        "stages",
        "a drop exactly at the budget fails",
        "mobile_ml/export/report.py",
        "parity.accuracy_drop_pp <= budget_pp + 1e-9",
        "parity.accuracy_drop_pp < budget_pp",
        (f"{E}::test_gate_is_on_the_signed_drop_and_a_drop_at_the_budget_passes",),
    ),
    Mutant(
        "recommend-largest",
        "stages",
        "the recommendation is the largest passing variant, not the smallest",
        "mobile_ml/export/report.py",
        "return min(passing, key=lambda t: t[:2])[2] if passing else None",
        "return max(passing, key=lambda t: t[:2])[2] if passing else None",
        (f"{E}::test_gate_is_on_the_signed_drop_and_a_drop_at_the_budget_passes",),
    ),
    Mutant(
        "force-replaces-every-variant",
        "stages",
        "export --force drops the variants it was not asked to rebuild",
        "mobile_ml/export/exporter.py",
        "representative=representative, keep=earlier)",
        "representative=representative, keep=None)",
        (f"{E}::test_force_reexport_keeps_the_earlier_variants_and_recommends_over_all",),
    ),
    Mutant(
        "select-on-test-split",
        "stages",
        "candidates early-stopped and selected on the test split",
        "mobile_ml/train/trainer.py",
        'splits["validation"],',
        'splits["test"],',
        (
            f"{T}::test_recorded_validation_scores_are_the_saved_models_on_validation",
            f"{T}::test_selection_and_early_stopping_never_look_at_the_test_split",
        ),
    ),
    Mutant(
        "normalize-with-all-rows",
        "stages",
        "the normalization mean is fitted on every split, leaking test data",
        "mobile_ml/data/tabular.py",
        'mean = encoded["train"].mean(axis=0)',
        'mean = np.concatenate([encoded["train"], encoded["validation"], encoded["test"]]).mean(axis=0)',
        ("tests/test_tabular.py::test_normalization_is_train_mean_and_population_std",),
    ),
    Mutant(
        "calibrate-on-test-split",
        "stages",
        "integer variants calibrated on the test split they are then judged on",
        "mobile_ml/export/exporter.py",
        "else representative_sample(train[0], options.calibration_samples, options.seed)",
        "else representative_sample(x_test, options.calibration_samples, options.seed)",
        (f"{E}::test_int8_is_calibrated_on_train_rows_only",),
    ),
)

MUTANTS: tuple[Mutant, ...] = STAGES
