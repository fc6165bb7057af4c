"""Copy an exported variant into the app's assets as the bundled fallback model (what runs before any update).

    python android_demo/bundle_model.py runs/quickstart/run [--variant int8]

The model must pass its own health check with LiteRT first; the three files are written beside each other and
renamed into place together, so a failed run leaves the previous bundle as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).parent / "app" / "src" / "main" / "assets" / "bundle"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rundir", type=Path, help="run directory with exports/ (e.g. runs/quickstart/run)")
    ap.add_argument("--variant", default=None, help="exported variant (default: the recommended one)")
    ap.add_argument("--out", type=Path, default=ASSETS)
    args = ap.parse_args(argv)

    from mobile_ml.contracts.export import read_export
    from mobile_ml.errors import InputFileError
    from mobile_ml.export.metadata import health_check

    exports = args.rundir / "exports"
    try:
        variant = args.variant or read_export(exports / "export.json").recommended
        if variant is None:
            raise InputFileError("the export recommends no variant", hint="pass --variant")
        model = (exports / variant / "model.tflite").read_bytes()
        meta_bytes = (exports / variant / "metadata.json").read_bytes()
    except (OSError, InputFileError) as e:
        print(
            f"error: {exports} has no usable export ({e}); hint: run `mobile-ml export {args.rundir}` first",
            file=sys.stderr,
        )
        return 2
    try:
        result = health_check(model, meta_bytes)  # reads metadata.json through its contract first
    except InputFileError as e:
        print(f"error: {variant} cannot be checked: {e.message}", file=sys.stderr)
        return 2
    if not result.ok:
        print(f"error: {variant} fails its own health check: {result.detail}", file=sys.stderr)
        return 3
    bundle = {
        "schema": "mobile_ml.app_bundle",
        "schema_version": 1,
        "version": "0.0.0-bundled",
        "variant": variant,
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "metadata_sha256": hashlib.sha256(meta_bytes).hexdigest(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=args.out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; assets are not secret
    (tmp / "model.tflite").write_bytes(model)
    (tmp / "metadata.json").write_bytes(meta_bytes)
    (tmp / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n")
    old = args.out.with_name(args.out.name + ".old")
    if args.out.exists():
        args.out.rename(old)
    tmp.rename(args.out)
    shutil.rmtree(old, ignore_errors=True)
    print(f"bundled {variant} ({len(model):,} bytes, health check {result.detail}) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
