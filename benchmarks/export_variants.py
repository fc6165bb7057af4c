"""Export figures for the README: size, accuracy parity and wall time of every variant on three models.

    python benchmarks/export_variants.py [--out benchmarks/results/export_variants.json] [--tables digits,...]

1. The digits CNN exactly as `mobile-ml quickstart` trains and exports it (real data, real accuracy).
   Targets from the Export issue: int8 ≤ 0.30× fp32 with an accuracy drop ≤ 0.5 points.
2. A MobileNetV2-style image model (96×96×3, width multiplier 0.35, 10 classes, random weights: no download is
   possible here). Accuracy is meaningless with random weights, so parity is top-1 agreement and output difference
   against Keras on 128 random images. Target: every variant converts and int8 ≤ 0.30× fp32.

3. A tabular MLP on the Palmer Penguins raw data (examples/penguins-raw.csv, trained by examples/penguins.toml),
   whose features range from ~0.1 (one-hot, isotope ratios) to ~4,000 (body mass in g) and ~2,008 (year). Every
   variant exported twice: "before", with the Normalization layer inside the integer graph (one int8 input scale
   for all features), and "after", the integer variants taking normalized features (mobile_ml.export.normalization).
   Target: every integer variant within 1 point of Keras, or one extra misclassified test row.
   Data: Gorman KB, Williams TD, Fraser WR (2014), "Ecological sexual dimorphism and environmental variability
   within a community of Antarctic penguins (genus Pygoscelis)", PLoS ONE 9(3): e90081; Palmer Station Antarctica
   LTER. The raw table as shipped by the `palmerpenguins` R/Python package 0.1.6 (penguins_raw), licence CC0 1.0.

`--tables` runs only some of them (digits, mobilenet, tabular) and keeps the others' earlier figures in --out.
Every figure comes from the real converter and the LiteRT interpreter; wall times are one run each on a shared
machine (expect ±30 %), measured in this process after TensorFlow is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mobile_ml import _tf  # noqa: E402
from mobile_ml.export import finetune, tflite_file  # noqa: E402
from mobile_ml.export.convert import convert  # noqa: E402
from mobile_ml.export.options import VARIANTS  # noqa: E402


def weight_bytes(data: bytes) -> int:
    """Bytes of constant buffers (weights, biases) in a .tflite: the part quantization shrinks."""
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(data, 0)
    return sum(m.Buffers(i).DataLength() for i in range(m.BuffersLength()))


def digits() -> dict:
    from mobile_ml.export.exporter import export_run
    from mobile_ml.export.options import ExportOptions
    from mobile_ml.pipeline import QUICKSTART, run_pipeline
    from mobile_ml.train.rundir import load_run

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = run_pipeline(QUICKSTART, Path(tmp) / "qs")
        wall = time.perf_counter() - t
        exp = result.export
        fp32 = exp.variant("fp32")
        rows = []
        for v in exp.variants:
            data = (Path(tmp) / "qs" / "run" / "exports" / v.file).read_bytes()
            rows.append(
                {
                    "variant": v.variant,
                    "bytes": v.bytes,
                    "size_ratio": v.size_ratio,
                    "weight_bytes_ratio": round(
                        weight_bytes(data)
                        / weight_bytes((Path(tmp) / "qs" / "run" / "exports" / fp32.file).read_bytes()),
                        4,
                    ),
                    "gzip_bytes": v.gzip_bytes,
                    "accuracy": v.parity.metrics.accuracy,
                    "accuracy_drop_pp": v.parity.accuracy_drop_pp,
                    "agreement": v.parity.agreement,
                    "seconds": round(sum(v.seconds.values()), 2),
                    "passed": v.passed,
                }
            )
        # The same run exported with one scale per tensor (`mobile-ml export --per-tensor`).
        run = load_run(Path(tmp) / "qs" / "run")
        pt = export_run(
            run, Path(tmp) / "per-tensor", ExportOptions(variants=("int8", "pruned-int8"), per_channel=False)
        )
        for v in pt.variants:
            data = (Path(tmp) / "per-tensor" / v.file).read_bytes()
            rows.append(
                {
                    "variant": f"{v.variant} --per-tensor",
                    "bytes": v.bytes,
                    "size_ratio": round(v.bytes / fp32.bytes, 4),
                    "weight_bytes_ratio": round(
                        weight_bytes(data)
                        / weight_bytes((Path(tmp) / "qs" / "run" / "exports" / fp32.file).read_bytes()),
                        4,
                    ),
                    "gzip_bytes": v.gzip_bytes,
                    "accuracy": v.parity.metrics.accuracy,
                    "accuracy_drop_pp": v.parity.accuracy_drop_pp,
                    "agreement": v.parity.agreement,
                    "seconds": round(sum(v.seconds.values()), 2),
                    "passed": v.passed,
                }
            )
        return {
            "model": result.train.selected.candidate.name,
            "params": result.train.selected.params,
            "keras_accuracy": exp.keras.accuracy,
            "recommended": exp.recommended,
            "quickstart_wall_s": round(wall, 1),
            "export_wall_s": round(exp.seconds, 1),
            "variants": rows,
        }


def mobilenet(size: int = 96, alpha: float = 0.35, classes: int = 10) -> dict:
    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    with _tf.quiet_stderr():
        model = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), alpha=alpha, weights=None, classes=classes, classifier_activation="softmax"
        )
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(128, size, size, 3)).astype(np.float32)  # MobileNetV2's input range
    y = rng.integers(0, classes, size=128)
    # Random weights with the stock BatchNorm statistics (mean 0, variance 1) shrink activations to ~1e-11, and every
    # output becomes exactly 0.1: parity would be trivially perfect. Set each BatchNorm's statistics from one batch
    # (momentum 0 for one training-mode pass) so activations, and the outputs compared below, are realistic.
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(x[:64], training=True)
    for bn, momentum in zip(bns, saved, strict=True):
        bn.momentum = momentum
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras_probs = model.predict(x, verbose=0)
    rows, fp32_bytes = [], None
    for variant, per_channel in [(v, True) for v in VARIANTS] + [("int8", False)]:
        t = time.perf_counter()
        source = model
        if variant == "qat-int8":
            source, _ = finetune.quantization_aware(model, (x, y), None, epochs=1, learning_rate=1e-4, batch_size=32)
        elif variant == "pruned-int8":
            source, _ = finetune.pruned(model, (x, y), None, sparsity=0.5, epochs=1, learning_rate=1e-4, batch_size=32)
        data = convert(
            source, "int8" if variant.endswith("int8") else variant, representative=x[:64], per_channel=per_channel
        )
        variant += "" if per_channel else " --per-tensor"
        seconds = time.perf_counter() - t
        fp32_bytes = fp32_bytes or len(data)
        interp = tflite_file.load_interpreter(data, variant)
        probs = tflite_file.predict(interp, x, batch=32)
        ops = tflite_file.ops_info(data)
        rows.append(
            {
                "variant": variant,
                "bytes": len(data),
                "size_ratio": round(len(data) / fp32_bytes, 4),
                "agreement": float((probs.argmax(1) == keras_probs.argmax(1)).mean()),
                "max_abs_diff": float(np.abs(probs - keras_probs).max()),
                "builtin_only": ops.builtin_only,
                "export_s": round(seconds, 2),
            }
        )
        print(f"  mobilenet {variant}: {len(data) / 1024:.0f} KiB, {seconds:.1f} s", file=sys.stderr)
    return {
        "model": f"MobileNetV2 {size}x{size}x3 alpha={alpha}",
        "params": int(model.count_params()),
        "variants": rows,
    }


def tabular() -> dict:
    """Penguins: every variant with normalization inside the integer graph (before) and outside it (after)."""
    from mobile_ml.export.exporter import export_run
    from mobile_ml.export.options import ExportOptions
    from mobile_ml.pipeline import load_pipeline_config, run_pipeline
    from mobile_ml.train.rundir import load_run

    root = Path(__file__).resolve().parents[1]
    cfg = load_pipeline_config(root / "examples" / "penguins.toml")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(cfg, export=ExportOptions(variants=VARIANTS, max_accuracy_drop=100))
        result = run_pipeline(cfg, Path(tmp) / "p")
        run = load_run(Path(tmp) / "p" / "run")
        before = export_run(run, Path(tmp) / "before", cfg.export, normalize_in_model=True)
        after = result.export
        spec = result.data
        mean, std = np.asarray(spec.normalization.mean), np.asarray(spec.normalization.std)
        rows = []
        for b in before.variants:
            a = after.variant(b.variant)
            rows.append(
                {
                    "variant": b.variant,
                    "bytes": a.bytes,
                    "size_ratio": a.size_ratio,
                    "accuracy_before": b.parity.metrics.accuracy,
                    "drop_pp_before": b.parity.accuracy_drop_pp,
                    "input_scale_before": b.inputs[0].scale,
                    "accuracy": a.parity.metrics.accuracy,
                    "drop_pp": a.parity.accuracy_drop_pp,
                    "input_scale": a.inputs[0].scale,
                    "agreement": a.parity.agreement,
                    "within_one_row": after.keras.accuracy - a.parity.metrics.accuracy
                    <= max(0.01, 1 / after.keras.examples) + 1e-9,
                }
            )
        return {
            "model": result.train.selected.candidate.name,
            "params": result.train.selected.params,
            "features": len(spec.features),
            "feature_mean_range": [float(np.abs(mean).min()), float(np.abs(mean).max())],
            "feature_std_range": [float(std.min()), float(std.max())],
            "keras_accuracy": after.keras.accuracy,
            "test_rows": after.keras.examples,
            "variants": rows,
        }


TABLES = {"digits": digits, "mobilenet": mobilenet, "tabular": tabular}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "export_variants.json")
    ap.add_argument("--tables", default=",".join(TABLES), help="comma-separated: " + ", ".join(TABLES))
    args = ap.parse_args()
    names = [t.strip() for t in args.tables.split(",") if t.strip()]
    out = json.loads(args.out.read_text()) if args.out.is_file() else {}
    out.update(schema="mobile_ml.bench.export_variants", schema_version=1, environment=_tf.versions())
    # "date" is when every table was last run together; "dates" says when each one was.
    dates = out.setdefault("dates", {t: out["date"] for t in TABLES if t in out and "date" in out})
    for name in names:
        print(f"{name} ...", file=sys.stderr)
        out[name] = TABLES[name]()
        dates[name] = time.strftime("%Y-%m-%d")
    if set(names) >= set(TABLES):
        out["date"] = time.strftime("%Y-%m-%d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print_tables(out)
    print(f"\nwrote {args.out}")


def print_tables(out: dict) -> None:
    if "digits" in out:
        print_digits(out["digits"])
    if "mobilenet" in out:
        print_mobilenet(out["mobilenet"])
    if "tabular" in out:
        t = out["tabular"]
        lo, hi = t["feature_std_range"]
        print(
            f"\n## penguins MLP ({t['model']}, {t['params']:,} params, {t['features']} features, std {lo:.3g}–"
            f"{hi:.3g}), Keras accuracy {t['keras_accuracy']:.4f} on {t['test_rows']} test rows"
        )
        print("| variant | KiB | × fp32 | accuracy before | drop before (pt) | accuracy after | drop after (pt) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in t["variants"]:
            print(
                f"| {r['variant']} | {r['bytes'] / 1024:.1f} | {r['size_ratio']:.3f} | {r['accuracy_before']:.4f} | "
                f"{r['drop_pp_before']:.2f} | {r['accuracy']:.4f} | {r['drop_pp']:.2f} |"
            )


def print_digits(d: dict) -> None:
    print(f"\n## digits CNN ({d['model']}, {d['params']:,} params), Keras accuracy {d['keras_accuracy']:.4f}")
    print("| variant | KiB | × fp32 | weights × fp32 | accuracy | drop (pt) | agreement | export s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in d["variants"]:
        print(
            f"| {r['variant']} | {r['bytes'] / 1024:.1f} | {r['size_ratio']:.3f} | {r['weight_bytes_ratio']:.3f} | "
            f"{r['accuracy']:.4f} | {r['accuracy_drop_pp']:.2f} | {r['agreement']:.4f} | {r['seconds']:.1f} |"
        )


def print_mobilenet(m: dict) -> None:
    print(f"\n## {m['model']} ({m['params']:,} params, random weights)")
    print("| variant | KiB | × fp32 | agreement | max abs diff | builtin only | export s |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for r in m["variants"]:
        print(
            f"| {r['variant']} | {r['bytes'] / 1024:.0f} | {r['size_ratio']:.3f} | {r['agreement']:.3f} | "
            f"{r['max_abs_diff']:.3g} | {r['builtin_only']} | {r['export_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
