"""A publisher that dies at any write, races another, or is handed a bad expiry; a root holding what it must not.

Threat 12 of UPDATE-THREATS.md: blobs first, signed manifest last; create-only writes; no signed manifest the
channel did not commit to. Every crash point of every release command leaves a root that verifies, or that the
next command repairs (issue 12, items 1, 11, 12, 13).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mobile_ml.errors import ConfigError
from mobile_ml.publish import channel as channel_mod
from mobile_ml.publish import keys, publisher, recover
from mobile_ml.publish.channel import RefusedError, history_numbers, manifest_path
from mobile_ml.publish.storage import ConcurrentUpdate, open_root
from mobile_ml.publish.verify import verify_root
from tests.test_publish import _snapshot, key_dir, s3_endpoint, s3_env  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]


class Died(BaseException):
    """The process ended here (a BaseException, like Ctrl-C: no ``except Exception`` in the code can swallow it)."""


class Dying:
    """A publish root that dies right after its k-th write (0: counts writes and never dies)."""

    def __init__(self, inner, k: int) -> None:
        self.inner, self.k, self.writes = inner, k, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _wrote(self, op: str, path: str) -> None:
        self.writes.append(f"{op} {path}")
        if len(self.writes) == self.k:
            raise Died(self.writes[-1])

    def create(self, path, data):
        done = self.inner.create(path, data)
        self._wrote("create", path)
        return done

    def replace(self, path, data, expected):
        self.inner.replace(path, data, expected)
        self._wrote("replace", path)

    def put(self, path, data):
        self.inner.put(path, data)
        self._wrote("put", path)


def _baseline(root: str, run, key_dir) -> None:  # noqa: F811
    """beta: 1.0.0 for everyone, then 1.1.0 staged at 10% (so halt and rollback have a fallback)."""
    publisher.publish(root, run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    publisher.publish(root, run, model="digits", version="1.1.0", channel="beta", key=key_dir, rollout=10)


COMMANDS = {
    "publish": lambda root, run, k: publisher.publish(
        root, run, model="digits", version="1.2.0", channel="beta", key=k, rollout=10
    ),
    "promote": lambda root, run, k: publisher.promote(root, "digits", source="beta", target="stable", key=k),
    "rollout": lambda root, run, k: publisher.set_rollout(root, "digits", "beta", percent=50, key=k),
    "halt": lambda root, run, k: publisher.halt(root, "digits", "beta", key=k),
    "rollback": lambda root, run, k: publisher.rollback(root, "digits", "beta", key=k),
    "refresh": lambda root, run, k: publisher.refresh(root, "digits", "beta", key=k, expires_days=60),
}


def _signed_history_above_channel(root: str, key_dir, channel: str) -> list[int]:  # noqa: F811
    """Signed history entries newer than the channel's committed manifest: what a hostile mirror could serve."""
    storage, public = open_root(root), keys.load_public(key_dir)
    state = channel_mod.read_state(storage, "digits", channel, public)
    return [
        h["manifest_version"]
        for h in channel_mod.history(storage, "digits", channel, public)
        if h.get("signature_ok") and h.get("manifest_version", 0) > state.manifest_version
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_crash_point_verifies_or_is_repaired_by_the_next_command(
    command,
    digits_export,
    key_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    run, _ = digits_export
    base = tmp_path / "base"
    _baseline(str(base), run, key_dir)
    channel = "stable" if command == "promote" else "beta"
    counter = Dying(open_root(str(shutil.copytree(base, tmp_path / "count"))), 0)
    monkeypatch.setattr(publisher, "open_root", lambda root: counter)
    COMMANDS[command](str(tmp_path / "count"), run, key_dir)
    writes = counter.writes
    mpath, number = manifest_path("digits", channel), 1 if command == "promote" else 3
    hist = f"digits/history/{channel}/{number:08d}.json"
    # the write steps: unsigned content first, the swap (the commit point), then every signed copy
    assert writes[-4:] == [f"replace {mpath}", f"put {mpath}.sig", f"create {hist}.sig", f"create {hist}"], writes
    assert all(w.startswith(("create blobs/", "create digits/releases/")) for w in writes[:-4]), writes
    monkeypatch.setattr(recover, "COMMIT_GRACE_SECONDS", 0.0)  # the next command runs "a minute later"
    for k in range(1, len(writes) + 1):
        root = str(shutil.copytree(base, tmp_path / f"crash{k}"))
        dying = Dying(open_root(root), k)
        monkeypatch.setattr(publisher, "open_root", lambda r, d=dying: d)
        with pytest.raises(Died):
            COMMANDS[command](root, run, key_dir)
        monkeypatch.setattr(publisher, "open_root", open_root)
        where = f"after write {k} ({writes[k - 1]})"
        report = verify_root(root, str(key_dir / "public.pem"))
        # the only damage a crash may leave: a swapped channel whose signature died with the process
        window = [f"{mpath}: signature does not verify with key {report.key_id[:16]}…"]  # an existing channel
        first = [f"{mpath}: signature file {mpath}.sig is missing"]  # a channel's first manifest
        assert report.ok or report.problems in (window, first), (where, report.problems)
        assert not [p for p in Path(root).rglob("*.tmp")], where
        with contextlib.suppress(RefusedError):  # it had committed already: "not greater than the current", ...
            COMMANDS[command](root, run, key_dir)  # the operator runs it again
        report = verify_root(root, str(key_dir / "public.pem"))
        assert report.ok and not [w for w in report.warnings if "history" in w], (where, report.problems)
        assert _signed_history_above_channel(root, key_dir, channel) == [], where
        publisher.refresh(root, "digits", channel, key=key_dir)  # and every later command works
        assert verify_root(root, str(key_dir / "public.pem")).ok, where


def test_crash_in_the_swap_window_puts_the_channel_back_and_reuses_the_number(
    digits_export,
    key_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """Death between the channel swap and its signature: the new bytes were never signed anywhere, so the next
    command puts the last committed manifest back and may use the same manifest_version again."""
    run, _ = digits_export
    root = str(tmp_path / "root")
    _baseline(root, run, key_dir)
    before = (Path(root) / manifest_path("digits", "beta")).read_bytes()
    dying = Dying(open_root(root), 1)
    monkeypatch.setattr(publisher, "open_root", lambda r: dying)
    with pytest.raises(Died):
        publisher.set_rollout(root, "digits", "beta", percent=50, key=key_dir)
    monkeypatch.setattr(publisher, "open_root", open_root)
    assert dying.writes == [f"replace {manifest_path('digits', 'beta')}"]
    assert sorted(history_numbers(open_root(root), "digits", "beta")) == [1, 2]  # nothing signed for number 3
    monkeypatch.setattr(recover, "COMMIT_GRACE_SECONDS", 0.0)
    state = channel_mod.read_state(open_root(root), "digits", "beta", keys.load_public(key_dir))
    assert (Path(root) / manifest_path("digits", "beta")).read_bytes() == before
    assert state.manifest_version == 2 and state.next_version == 3
    assert verify_root(root, str(key_dir / "public.pem")).ok


def test_a_fresh_unsigned_channel_is_another_publisher_committing_and_is_left_alone(
    digits_export,
    key_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """Within the grace period an unsigned channel may be a live commit between its two writes: putting it back
    would lose that publisher's update, so the command stops and writes nothing."""
    run, _ = digits_export
    root = str(tmp_path / "root")
    _baseline(root, run, key_dir)
    monkeypatch.setattr(publisher, "open_root", lambda r: Dying(open_root(root), 1))
    with pytest.raises(Died):
        publisher.halt(root, "digits", "beta", key=key_dir)
    monkeypatch.setattr(publisher, "open_root", open_root)
    before = _snapshot(Path(root))
    with pytest.raises(ConcurrentUpdate, match="another publisher is committing"):
        publisher.refresh(root, "digits", "beta", key=key_dir)
    assert _snapshot(Path(root)) == before


# A real process, really killed: it stops right after one write and waits for SIGKILL from the test.
_HOOK = r"""
import os, sys, time
from mobile_ml.publish import storage
point, marker = os.environ["DIE_AFTER"], os.environ["DIE_MARKER"]
for name in ("create", "replace", "put"):
    def wrapped(self, path, *a, _real=getattr(storage.LocalStorage, name), _name=name, **k):
        done = _real(self, path, *a, **k)
        if f"{_name} {path}" == point:
            open(marker, "w").close()
            time.sleep(600)
        return done
    setattr(storage.LocalStorage, name, wrapped)
from mobile_ml.cli import main
sys.argv = ["mobile-ml", *sys.argv[1:]]
main()
"""


_MAIN = "import sys; from mobile_ml.cli import main; sys.argv = ['mobile-ml', *sys.argv[1:]]; main()"


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    "point",
    ["replace digits/channels/beta.json", "create digits/history/beta/00000003.json.sig"],
    ids=["after-channel-swap", "after-history-signature"],
)
def test_kill_9_mid_refresh_is_repaired_by_the_next_refresh(point, digits_export, key_dir, tmp_path):  # noqa: F811
    run, _ = digits_export
    root = tmp_path / "root"
    _baseline(str(root), run, key_dir)
    marker = tmp_path / "wrote"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIE_AFTER": point, "DIE_MARKER": str(marker)}
    args = ["release", "refresh", "digits", "--channel", "beta", "--key", key_dir, "--root", root]
    proc = subprocess.Popen([sys.executable, "-c", _HOOK, *map(str, args)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    verify = ["release", "verify", "--root", root, "--public-key", key_dir / "public.pem"]
    env.pop("DIE_AFTER")
    first = _cli(*verify, env=env)
    assert first.returncode in (0, 3), first.stderr
    channel_file = root / manifest_path("digits", "beta")
    a_minute_ago = time.time() - recover.COMMIT_GRACE_SECONDS - 5
    os.utime(channel_file, (a_minute_ago, a_minute_ago))  # the next command comes after the grace period
    again = _cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    after = _cli(*verify, env=env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert _signed_history_above_channel(str(root), key_dir, "beta") == []


def test_a_publisher_that_read_the_channel_before_the_other_committed_leaves_nothing_signed(
    digits_export,
    key_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """The race of test_s3_racing_publishers, made deterministic: B reads, A commits completely, then B commits.
    B must lose without leaving a signed manifest in history (the old code listed history after A's commit,
    took the next number, signed it into history and only then lost the swap)."""
    _stale_race(digits_export.run, str(tmp_path / "root"), key_dir, monkeypatch)


def test_s3_stale_publisher_leaves_nothing_signed_and_crash_repair_uses_last_modified(
    digits_export,
    key_dir,  # noqa: F811
    s3_env,  # noqa: F811
    monkeypatch,
):
    _, bucket = s3_env
    root = f"s3://{bucket}/stale"
    _stale_race(digits_export.run, root, key_dir, monkeypatch)
    # a crash in the swap window on S3: fresh → left alone; after the grace period (LastModified) → put back
    monkeypatch.setattr(publisher, "open_root", lambda r: Dying(open_root(root), 1))
    with pytest.raises(Died):
        publisher.set_rollout(root, "digits", "beta", percent=50, key=key_dir)
    monkeypatch.setattr(publisher, "open_root", open_root)
    assert not verify_root(root, str(key_dir / "public.pem")).ok
    with pytest.raises(ConcurrentUpdate, match="another publisher is committing"):
        publisher.refresh(root, "digits", "beta", key=key_dir)
    monkeypatch.setattr(recover, "COMMIT_GRACE_SECONDS", 0.0)
    assert publisher.refresh(root, "digits", "beta", key=key_dir).manifest.manifest_version == 3
    assert verify_root(root, str(key_dir / "public.pem")).ok


def _stale_race(run, root: str, key_dir, monkeypatch) -> None:  # noqa: F811
    publisher.publish(root, run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    public = keys.load_public(key_dir)
    stale = channel_mod.read_state(open_root(root), "digits", "beta", public)  # B reads ...
    publisher.publish(root, run, model="digits", version="1.1.0", channel="beta", key=key_dir)  # ... A commits
    monkeypatch.setattr(publisher, "read_state", lambda *a, **k: stale)
    with pytest.raises(ConcurrentUpdate, match="nothing of this command became current"):
        publisher.publish(root, run, model="digits", version="1.2.0", channel="beta", key=key_dir)
    monkeypatch.undo()
    state = channel_mod.read_state(open_root(root), "digits", "beta", public)
    assert state.version == "1.1.0" and state.manifest_version == 2
    assert history_numbers(open_root(root), "digits", "beta") == [1, 2]
    assert verify_root(root, str(key_dir / "public.pem")).ok


def test_verify_names_a_signed_history_entry_newer_than_its_channel(digits_export, key_dir, tmp_path):  # noqa: F811
    """What the old commit order left after a lost race or Ctrl-C: a live manifest the channel never committed."""
    run, _ = digits_export
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    hist = root / "digits/history/beta"
    publisher.publish(str(root), run, model="digits", version="1.1.0", channel="beta", key=key_dir)
    orphan = {n: (hist / n).read_bytes() for n in ("00000002.json", "00000002.json.sig")}
    shutil.rmtree(root)
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    for name, data in orphan.items():
        (hist / name).write_bytes(data)
    problems = verify_root(str(root), str(key_dir / "public.pem")).problems
    assert problems == [
        "digits/history/beta/00000002.json: signed manifest_version 2 is newer than the channel's current 1: the "
        "channel never committed to it, and devices would accept it from a mirror"
    ]
    # and the next commit never reuses its number (two different signed manifests with one number)
    m = publisher.refresh(str(root), "digits", "beta", key=key_dir).manifest
    assert m.manifest_version == 3 and verify_root(str(root), str(key_dir / "public.pem")).ok


# --- item 13: expiry -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", ["-5", "0", "0.5", "nan", "inf", "-inf", "1e9", "3651"])
def test_refresh_and_publish_refuse_an_expiry_devices_would_refuse(days, digits_export, key_dir, tmp_path):  # noqa: F811
    from tests.test_cli import run as cli

    run, _ = digits_export
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    before = _snapshot(root)
    r = cli(
        "release", "refresh", "digits", "--channel", "beta", "--expires-days", days, "--key", key_dir, "--root", root
    )
    assert r.exit_code == 2 and "expiry must be 1 to 3650 days" in r.stderr, (r.exit_code, r.output)
    r = cli("publish", run, "--model", "digits", "--version", "1.1.0", "--channel", "beta", "--key", key_dir,
            "--root", root, "--expires-days", days)  # fmt: skip
    assert r.exit_code == 2 and "expiry must be" in r.stderr, (r.exit_code, r.output)
    assert _snapshot(root) == before


@pytest.mark.parametrize("days", ["1", "3650"])
def test_expiry_bounds_are_inclusive(days, digits_export, key_dir, tmp_path):  # noqa: F811
    from tests.test_cli import run as cli

    run, _ = digits_export
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    r = cli(
        "release", "refresh", "digits", "--channel", "beta", "--expires-days", days, "--key", key_dir, "--root", root
    )
    assert r.exit_code == 0, r.output
    assert verify_root(str(root), str(key_dir / "public.pem")).ok


def test_a_manifest_devices_would_refuse_is_never_signed(digits_export, key_dir, tmp_path):  # noqa: F811
    """The built manifest goes through the client's own check before anything is written: issued with a clock
    far in the past, it is already expired for every device."""
    run, _ = digits_export
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    before = _snapshot(root)
    with pytest.raises(RefusedError, match="devices would refuse this manifest .expired"):
        publisher.refresh(str(root), "digits", "beta", key=key_dir, now=datetime(2001, 1, 1, tzinfo=timezone.utc))
    assert _snapshot(root) == before
    with pytest.raises(ConfigError):
        publisher.refresh(str(root), "digits", "beta", key=key_dir, expires_days=float("nan"))


# --- item 1: what does not belong in a publish root ------------------------------------------------------------


def test_verify_names_private_keys_and_foreign_files(digits_export, key_dir, tmp_path):  # noqa: F811
    from tests.test_cli import run as cli

    run, _ = digits_export
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    assert list((root / "digits/channels").glob(".*.lock"))  # the publisher's own lock: not a problem
    (root / "digits/channels/.beta.json.x1y2.tmp").write_bytes(b"half")  # an interrupted write: a warning
    clean = verify_root(str(root), str(key_dir / "public.pem"))
    assert clean.ok and any(".tmp" in w for w in clean.warnings), clean.problems
    keys.generate(root / "keys/dev")
    (root / "telemetry.db").write_bytes(b"SQLite format 3\0")
    pem = (key_dir / "private.pem").read_bytes()
    (root / "notes.txt").write_bytes(b"backup of the key:\n" + pem)
    (root / ".secret").mkdir()
    (root / ".secret/k").write_bytes(pem)
    import hashlib

    (root / f"blobs/sha256/{hashlib.sha256(pem).hexdigest()}").write_bytes(pem)  # served, hash-valid, still a key
    problems = verify_root(str(root), str(key_dir / "public.pem")).problems
    keyed = sorted(p.split(":")[0] for p in problems if "private key" in p)
    foreign = sorted(p.split(":")[0] for p in problems if "not a file of the update protocol" in p)
    assert keyed == sorted(
        [".secret/k", "keys/dev/private.pem", "notes.txt", f"blobs/sha256/{hashlib.sha256(pem).hexdigest()}"]
    )
    assert foreign == ["keys/dev/key.json", "keys/dev/public.b64", "keys/dev/public.pem", "telemetry.db"]
    r = cli("release", "verify", "--root", root, "--public-key", key_dir / "public.pem")
    assert r.exit_code == 3 and "private key" in r.stdout + r.stderr and "keys/dev/private.pem" in r.stdout, r.output


def test_s3_verify_names_foreign_objects(digits_export, key_dir, s3_env):  # noqa: F811
    _, bucket = s3_env
    root = f"s3://{bucket}/foreign"
    publisher.publish(root, digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    storage = open_root(root)
    storage.put("keys/private.pem", b"not even a PEM")
    storage.put("backup/.env", b"-----BEGIN EC PRIVATE KEY-----\nMHc...\n")
    storage.put("digits/channels/beta.json.bak", b"{}")
    problems = verify_root(root, str(key_dir / "public.pem")).problems
    assert sorted(p.split(":")[0] for p in problems) == [
        "backup/.env",
        "digits/channels/beta.json.bak",
        "keys/private.pem",
    ], problems


def test_verify_names_a_manifest_served_under_another_channel(digits_export, key_dir, tmp_path):  # noqa: F811
    """Mix-and-match (threat 5): stable's signed manifest copied over beta verifies as a signature, yet devices on
    beta refuse it (wrong_channel), so verify must name it."""
    run, _ = digits_export
    root = tmp_path / "root"
    publisher.publish(str(root), run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    publisher.promote(str(root), "digits", source="beta", target="stable", key=key_dir)
    assert verify_root(str(root), str(key_dir / "public.pem")).ok
    for suffix in ("", ".sig"):
        shutil.copy(root / f"digits/channels/stable.json{suffix}", root / f"digits/channels/beta.json{suffix}")
    problems = verify_root(str(root), str(key_dir / "public.pem")).problems
    assert problems == ["digits/channels/beta.json: signed for digits/stable, served as digits/beta"]
