#!/usr/bin/env python3
"""A stand-in for `adb` and a phone, for tests only: no Android device can exist on these machines.

FAKE_ADB_DEVICES: comma-separated serials `adb devices` lists. FAKE_ADB_OUTPUT: the file the phone's benchmark_model
"prints". FAKE_ADB_LOG: every invocation is appended here, one JSON list per line, so tests can check the flags.
"""

import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
serials = [s for s in os.environ.get("FAKE_ADB_DEVICES", "").split(",") if s]
if args[:1] == ["devices"]:
    print("List of devices attached")
    for s in serials:
        print(f"{s}\tdevice")
    sys.exit(0)
if args[:1] == ["-s"]:
    if args[1] not in serials:
        print(f"error: device '{args[1]}' not found", file=sys.stderr)
        sys.exit(1)
    args = args[2:]
props = {
    "ro.product.manufacturer": "Google",
    "ro.product.model": "Pixel 7",
    "ro.soc.model": "Tensor G2",
    "ro.board.platform": "gs201",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
}
if args[:1] == ["push"]:
    sys.exit(0 if os.path.exists(args[1]) else 1)
if args[:2] == ["shell", "getprop"]:
    print(props.get(args[2], ""))
    sys.exit(0)
if args[:2] in (["shell", "mkdir"], ["shell", "chmod"]):
    sys.exit(0)
if args[:1] == ["shell"] and args[1].endswith("benchmark_model"):
    with open(os.environ["FAKE_ADB_OUTPUT"]) as f:
        sys.stdout.write(f.read())
    sys.exit(0)
print(f"fake adb: unsupported {args}", file=sys.stderr)
sys.exit(2)
