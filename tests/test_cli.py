"""The CLI through Typer's CliRunner, plus real subprocesses for exit codes and stderr."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from mobile_ml.cli import app
from tests.conftest import leftovers

runner = CliRunner()

TINY_TOML = """
[train]
epochs = 3
patience = 2
batch_size = 64
[train.grid]
width = [8]
depth = [1]
learning_rate = [0.01]
dropout = [0.0]
"""


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _command_paths(command, path=()):
    """Every group and command under ``command``, from Typer's click tree: a new command is covered by itself."""
    yield path
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(typer.main.get_command(app)))


def test_the_command_walk_reaches_nested_commands():
    # the commands the old hand-kept list missed; if the walk stopped at the top level these would be absent
    missed = {("release", c) for c in ("promote", "rollout", "halt", "refresh", "history")} | {("keys", "rotate")}
    assert missed <= set(COMMANDS)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "mobile-ml")
def test_help_for_every_command(cmd):
    r = run(*cmd, "--help")
    assert r.exit_code == 0, r.output
    usage = r.output.splitlines()[0].split()
    assert usage[0] == "Usage:" and usage[2 : 2 + len(cmd)] == list(cmd), r.output  # [0:2] is "Usage: PROG"
    assert len(r.output.splitlines()) > 3, r.output  # a description and options follow the usage line


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and r.output.startswith("mobile-ml ")


def test_prepare_and_profile_builtin(tmp_path):
    r = run("data", "prepare", "builtin:digits", "--out", tmp_path / "d", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"train": 1259, "validation": 269, "test": 269}
    r = run("data", "profile", "builtin:digits", "--json", "-")
    assert json.loads(r.stdout)["images"] == 1797
    r = run("data", "profile", "builtin:digits", "--json", tmp_path / "p.json")
    assert r.exit_code == 0 and "Target classes" in r.stdout
    assert json.loads((tmp_path / "p.json").read_text())["target"]["num_classes"] == 10


@pytest.mark.slow
def test_train_with_config_and_json(digits_dir, tmp_path):
    (tmp_path / "t.toml").write_text(TINY_TOML)
    r = run("train", digits_dir, "--out", tmp_path / "run", "--config", tmp_path / "t.toml", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["selected"] == "cnn-w8-d1-lr0.01-do0" and 0 < out["test"]["accuracy"] <= 1
    assert (tmp_path / "run" / "model.keras").is_file()
    # a second run into the same directory is refused, and the first run survives
    before = (tmp_path / "run" / "run.json").read_text()
    r = run("train", digits_dir, "--out", tmp_path / "run", "--config", tmp_path / "t.toml")
    assert r.exit_code == 2 and "already exists" in r.output and "--force" in r.output
    assert (tmp_path / "run" / "run.json").read_text() == before


def csv_file(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def many_rows(n=30, classes=("a", "b")):
    return "x,y,label\n" + "".join(f"{i},{i % 7},{classes[i % len(classes)]}\n" for i in range(n))


BAD_INPUTS = {
    "missing file": (lambda t: ["data", "prepare", t / "nope.csv", "--target", "label"], "does not exist"),
    "empty csv": (lambda t: ["data", "prepare", csv_file(t, ""), "--target", "label"], "has no data rows"),
    "unknown target": (lambda t: ["data", "prepare", csv_file(t, many_rows()), "--target", "nope"], "'nope'"),
    "one class": (
        lambda t: ["data", "prepare", csv_file(t, many_rows(classes=("a",))), "--target", "label"],
        "one class",
    ),
    "unencodable column": (
        lambda t: [
            "data",
            "prepare",
            csv_file(
                t,
                "id,text,label\n"
                + "".join(
                    f"{i},this is a long free text comment number {i} about nothing,{'ab'[i % 2]}\n" for i in range(30)
                ),
            ),
            "--target",
            "label",
            "--keep",
            "text",
        ],
        "cannot be encoded",
    ),
    "too few rows": (
        lambda t: ["data", "prepare", csv_file(t, "x,label\n1.5,a\n0.5,b\n3.5,a\n2.5,b\n"), "--target", "label"],
        "has only 2 row(s)",
    ),
    "unreadable image": (lambda t: ["data", "prepare", _broken_images(t)], "broken.png"),
    "malformed toml": (lambda t: ["pipeline", csv_file(t, "[data]\nsource = \n", "p.toml")], "line 2"),
    "unknown toml key": (
        lambda t: ["pipeline", csv_file(t, '[data]\nsource = "builtin:digits"\n[train]\nepoch = 3\n', "p.toml")],
        "'train.epoch'",
    ),
    "deeply nested toml": (
        lambda t: ["pipeline", csv_file(t, "[data]\nsource = " + "[" * 5000 + "]" * 5000 + "\n", "p.toml")],
        "nested too deeply",
    ),
    "bad option value": (lambda t: ["data", "prepare", "builtin:digits", "--split", "0.9,0.2,0.1"], "add up"),
    "unknown builtin": (lambda t: ["data", "prepare", "builtin:mnist"], "unknown built-in dataset"),
    "not a data dir": (lambda t: ["train", t], "not a prepared data directory"),
}


def _broken_images(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (4, 4), i * 20).save(tmp_path / "imgs" / c / f"{i}.png")
    (tmp_path / "imgs" / "b" / "broken.png").write_bytes(b"not an image")
    return tmp_path / "imgs"


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exit_2_clear_message_nothing_written(case, tmp_path):
    args, expected = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    r = run(*args(work), "--out", out)
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and expected in r.output, r.output
    assert "Traceback" not in r.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("")
    r = run("data", "prepare", "builtin:digits", "--out", tmp_path / "file" / "data")
    assert r.exit_code == 2 and "is a file" in r.output and "hint:" in r.output


def test_force_replaces_only_after_success(tmp_path):
    out = tmp_path / "d"
    assert run("data", "prepare", "builtin:digits", "--out", out).exit_code == 0
    good = (out / "data.json").read_text()
    r = run("data", "prepare", "builtin:digits", "--out", out, "--force", "--split", "0.5,0.5,0.5")
    assert r.exit_code == 2 and (out / "data.json").read_text() == good
    assert run("data", "prepare", "builtin:digits", "--out", out, "--force", "--seed", "7").exit_code == 0
    assert json.loads((out / "data.json").read_text())["split"]["seed"] == 7


def _subprocess(*args, cwd, columns=120):
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "mobile_ml", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_subprocess_error_is_one_clean_message(tmp_path):
    r = _subprocess("data", "prepare", "missing.csv", "--target", "y", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "missing.csv does not exist" in lines[0]
    assert lines[1].startswith("hint: ") and len(lines) == 2
    assert r.stdout == "" and not (tmp_path / "o").exists()
    debug = _subprocess("--debug", "data", "prepare", "missing.csv", "--target", "y", "--out", "o", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "InputFileError" in debug.stderr


def test_light_commands_do_not_import_tensorflow():
    code = (
        "import sys; from mobile_ml.cli import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['data', 'profile', 'builtin:digits', '--json', '-']); "
        "assert r.exit_code == 0, r.output; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_quickstart_end_to_end_in_a_real_process(tmp_path):
    """The README's main command: real process, real training, the accuracy the issue promises, quiet output."""
    r = _subprocess("quickstart", "--out", tmp_path / "qs", cwd=tmp_path, columns=80)  # a pipe's width
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "qs" / "run" / "run.json").read_text())
    assert meta["test"]["accuracy"] >= 0.95, meta["test"]
    assert meta["data"]["dir"] == "../data"
    assert {p.name for p in (tmp_path / "qs").iterdir()} == {"profile.json", "data", "run"}
    assert "Test split: accuracy" in r.stdout and "★" in r.stdout
    exported = json.loads((tmp_path / "qs" / "run" / "exports" / "export.json").read_text())
    assert [v["variant"] for v in exported["variants"]] == [
        "fp32",
        "fp16",
        "dynamic",
        "int8",
        "qat-int8",
        "pruned-int8",
    ]
    assert exported["recommended"] and all(v["parity"]["agreement"] > 0.95 for v in exported["variants"])
    assert "Exported variants" in r.stdout and "recommended:" in r.stdout
    # ... benchmarked (every variant, 1 thread) ...
    bench = json.loads((tmp_path / "qs" / "run" / "benchmark" / "benchmark.json").read_text())
    assert len(bench["measurements"]) == 6 and "Latency per inference" in r.stdout
    # ... and published, signed with a development key created on the spot
    assert (tmp_path / "keys" / "dev" / "private.pem").stat().st_mode & 0o777 == 0o600
    # the commands it prints are whole lines, to copy as they are, even at 80 columns
    lines = [line.strip() for line in r.stdout.splitlines()]
    assert "mobile-ml serve exports --port 8000" in lines
    assert (
        "mobile-ml device sync --server http://127.0.0.1:8000/ --model digits --channel dev --public-key "
        "keys/dev/public.pem --state device-state --install-id demo-device --app-version 1.0.0"
    ) in lines
    names = [c["name"] for c in meta["selection"]["candidates"]]
    assert len(names) == 4 and all(any(n in line for line in lines) for n in names), names
    for header in BENCHMARK_HEADERS:
        assert re.search(rf"(^|\s){re.escape(header)}(\s|$)", r.stdout, re.M), header
    assert "…" not in r.stdout
    v = _subprocess(
        "release", "verify", "--root", "exports", "--public-key", "keys/dev/public.pem", "--json", cwd=tmp_path
    )
    assert v.returncode == 0 and json.loads(v.stdout)["manifests"] == 1, v.stderr
    # TensorFlow's own log noise must not reach the user's terminal
    for noise in ("absl", "cuInit", "cuda", "oneDNN", "I0000", "E0000", "WARNING"):
        assert noise not in r.stderr and noise not in r.stdout, noise


def test_serve_on_a_busy_port_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "root").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _subprocess("serve", "root", "--port", port, "--telemetry-db", "t.db", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0] == f"error: 127.0.0.1:{port} is already in use by another process", lines
    assert lines[1].startswith("hint: ") and "--port" in lines[1]
    assert "serving" not in r.stderr and "Errno" not in r.stderr and r.stdout == ""


def test_port_check_passes_a_free_port_and_names_bad_hosts():
    from mobile_ml.deliver.ports import PortError, check_free

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check_free("127.0.0.1", port)  # free again once closed
    with pytest.raises(PortError, match="nonexistent.invalid"):
        check_free("nonexistent.invalid", port)
    with pytest.raises(PortError, match="0–65535"):
        check_free("127.0.0.1", 70000)


def _profile_csv(tmp_path):
    columns = ["Culmen Length (mm)", "Flipper Length (mm)", "Individual ID", "Clutch Completion Date", "label"]
    rows = [f"{30 + i % 17},{180 + i % 23},N{i}A{i % 2},2007-11-{1 + i % 28:02d},{'ab'[i % 2]}" for i in range(60)]
    return csv_file(tmp_path, ",".join(columns) + "\n" + "\n".join(rows) + "\n"), columns


@pytest.mark.parametrize("columns", [80, 40])
def test_tables_keep_every_name_whole_at_any_width(tmp_path, columns):
    """Piped output is 80 columns or fewer: rich would cut cells with "…"; ours fold free text or go vertical."""
    path, names = _profile_csv(tmp_path)
    r = runner.invoke(app, ["data", "profile", str(path), "--target", "label"], env={"COLUMNS": str(columns)})
    assert r.exit_code == 0, r.output
    assert all(n in r.stdout for n in names), r.stdout
    assert "…" not in r.stdout
    if columns == 40:  # too narrow for ten columns: one block per column profiled, each name on its own line
        assert all(f"column {n}" in r.stdout.splitlines() for n in names[:-1]), r.stdout
    r = runner.invoke(
        app, ["data", "prepare", "builtin:digits", "--out", tmp_path / "d"], env={"COLUMNS": str(columns)}
    )
    assert r.exit_code == 0, r.output
    assert "validation" in r.stdout and "…" not in r.stdout


PIPELINE_TOML = """
out = "runs/tiny"
[data]
source = "builtin:digits"
[train]
epochs = 2
patience = 1
batch_size = 64
[train.grid]
width = [8, 16]
depth = [1]
learning_rate = [0.003]
dropout = [0.1]
[export]
variants = ["fp32", "int8"]
calibration_samples = 32
[benchmark]
min_seconds = 0.1
[publish]
model = "tiny"
channel = "beta"
root = "pub"
key_dir = "keys"
"""
BENCHMARK_HEADERS = ("variant", "thr", "init ms", "first", "p50", "p90", "p99", "std", "runs", "GOP/s", "MiB")


@pytest.mark.slow
def test_pipeline_benchmarks_and_publishes_and_prints_whole_when_narrow(tmp_path):
    """[benchmark] and [publish] run those stages too; names, headers and commands stay whole at 40 columns (the
    quickstart test checks 80)."""
    (tmp_path / "p.toml").write_text(PIPELINE_TOML)
    r = _subprocess("pipeline", "p.toml", cwd=tmp_path, columns=40)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "runs" / "tiny" / "run"
    bench = json.loads((run_dir / "benchmark" / "benchmark.json").read_text())
    assert sorted(m["variant"] for m in bench["measurements"]) == ["fp32", "int8"]
    # the table's keys over quickstart's short phases
    assert bench["options"]["min_seconds"] == 0.1 and bench["options"]["warmup_seconds"] == 0.1
    assert bench["options"]["threads"] == [1]
    pub, keys = (tmp_path / "pub").resolve(), (tmp_path / "keys").resolve()
    v = _subprocess("release", "verify", "--root", pub, "--public-key", keys / "public.pem", "--json", cwd=tmp_path)
    assert v.returncode == 0 and json.loads(v.stdout)["manifests"] == 1, v.stderr
    assert (pub / "tiny" / "channels" / "beta.json").is_file()

    lines = [line.strip() for line in r.stdout.splitlines()]
    names = [c["name"] for c in json.loads((run_dir / "run.json").read_text())["selection"]["candidates"]]
    assert len(names) == 2 and all(any(n in line for line in lines) for n in names), names
    for header in BENCHMARK_HEADERS:
        assert re.search(rf"(^|\s){re.escape(header)}(\s|$)", r.stdout, re.M), header
    assert f"mobile-ml serve {pub} --port 8000" in lines
    assert (
        f"mobile-ml device sync --server http://127.0.0.1:8000/ --model tiny --channel beta --public-key "
        f"{keys}/public.pem --state device-state --install-id demo-device --app-version 1.0.0"
    ) in lines
    assert "…" not in r.stdout
