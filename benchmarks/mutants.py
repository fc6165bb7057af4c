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
TR = "tests/test_train.py"

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
        'load_split(datadir, spec, "validation"),',
        'load_split(datadir, spec, "test"),',
        (
            f"{TR}::test_recorded_validation_scores_are_the_saved_models_on_validation",
            f"{TR}::test_selection_and_early_stopping_never_look_at_the_test_split",
        ),
    ),
    Mutant(
        "normalize-with-all-rows",
        "stages",
        "the normalization mean is fitted on every split, leaking test data",
        "mobile_ml/data/encoding.py",
        'if s == "train":\n                    moments.add(x)',
        "if s in SPLITS:\n                    moments.add(x)",
        ("tests/test_tabular.py::test_normalization_is_train_mean_and_population_std",),
    ),
    Mutant(
        "csv-segment-cut-unchecked",
        "stages",
        "a cut that a stray quote put inside a quoted field is accepted (the sentinel row is not checked)",
        "mobile_ml/data/csv_reader.py",
        "if last < 0 or any(c.slice(last).null_count != 1 for c in table.columns):",
        "if False:",
        (
            "tests/test_csv_segments.py::"
            "test_a_cut_that_a_stray_quote_put_inside_a_quoted_field_is_caught_by_the_sentinel_row",
        ),
    ),
    Mutant(
        "csv-stray-quote-unbounded",
        "stages",
        "after a lone stray quote the rest of the file gathers in one buffer instead of going to pyarrow's lexer",
        "mobile_ml/data/csv_segments.py",
        'if cut == 0 and n > MAX_CARRY * SEGMENT_BYTES and buf.find(b"\\n", 0, n) >= 0:',
        "if False:",
        ("tests/test_csv_reader.py::test_the_sha256_is_the_files_whether_hashed_while_parsing_or_beside_a_fallback",),
    ),
    Mutant(
        "int8-tables-normalized-inside",
        "stages",
        "integer variants of a table keep normalization inside the graph (one input scale for every feature)",
        "mobile_ml/export/exporter.py",
        "if tabular_run and not normalize_in_model and",
        "if False and",
        ("tests/test_int8_tables.py::test_integer_variants_of_mixed_scale_features_stay_within_one_row",),
    ),
    Mutant(
        "calibrate-on-test-split",
        "stages",
        "integer variants calibrated on the test split they are then judged on",
        "mobile_ml/export/exporter.py",
        'representative = representative_sample(run.split("train")[0],',
        'representative = representative_sample(run.split("test")[0],',
        (f"{E}::test_int8_is_calibrated_on_train_rows_only",),
    ),
    Mutant(
        "profile-duplicates-by-arrow-equality",
        "stages",
        "duplicate rows are compared in Arrow, which tells -0.0 from 0.0 where pandas does not",
        "mobile_ml/data/column_stats.py",
        "out[maybe] = numpy_numbers(df.iloc[maybe]).duplicated()",
        "out[maybe] = df.iloc[maybe].duplicated()",
        ("tests/test_csv_reader.py::test_profile_figures_equal_the_pandas_path[numbers]",),
    ),
    Mutant(
        "profile-int-with-gap-dtype",
        "stages",
        "an Arrow-backed integer column with a gap is reported as int64 where pandas reads float64",
        "mobile_ml/data/column_stats.py",
        'return np.dtype("float64") if kind.kind in "iu" and series.hasnans else kind',
        "return kind",
        ("tests/test_csv_reader.py::test_profile_figures_equal_the_pandas_path[numbers]",),
    ),
    Mutant(
        "cli-exit-without-flush",
        "stages",
        "the console script's quick exit drops what is still buffered for stdout",
        "mobile_ml/cli/__init__.py",
        "                stream.flush()",
        "                pass",
        ("tests/test_cli_exit.py::test_buffered_output_written_at_exit_is_not_lost",),
    ),
    Mutant(
        "cli-exit-kills-threads",
        "stages",
        "the console script's quick exit does not wait for a running thread",
        "mobile_ml/cli/__init__.py",
        "    shutdown()\n",
        "    pass\n",
        ("tests/test_cli_exit.py::test_a_running_thread_is_waited_for_as_at_any_exit",),
    ),
)

T = "tests/test_threats.py::"
SYNC, DOWNLOAD, TRUST = "mobile_ml/client/sync.py", "mobile_ml/client/download.py", "mobile_ml/publish/trust.py"
STATE, STORAGE, SERVER = "mobile_ml/client/state.py", "mobile_ml/publish/storage.py", "mobile_ml/deliver/server.py"
MANIFEST, PUBLISHER = "mobile_ml/publish/manifest.py", "mobile_ml/publish/publisher.py"
FITS, VERIFY, RECOVER = "mobile_ml/client/fits.py", "mobile_ml/publish/verify.py", "mobile_ml/publish/recover.py"
CF, PC = "tests/test_client_faults.py::", "tests/test_publish_crash.py::"


def _fault(row: int, name: str, what: str, file: str, old: str, new: str, *tests: str) -> Mutant:
    """A defence against a fault of issue 12 (slow servers, damaged devices, crashed publishers): full test ids."""
    return Mutant(f"t{row:02d}-{name}", "channel", what, file, old, new, tests)


def _channel(row: int, name: str, what: str, file: str, old: str, new: str, *tests: str) -> Mutant:
    """A mutant that removes (part of) the defence of threat row ``row``; its tests live in tests/test_threats.py."""
    return Mutant(f"t{row:02d}-{name}", "channel", what, file, old, new, tuple(T + t for t in tests))


CHANNEL: tuple[Mutant, ...] = (
    # 1 forged manifest: signature over the exact bytes, verified before parsing
    _channel(1, "no-signature-check", "the manifest's signature is not checked", TRUST,
             "if not keys.verify(public_key, raw, signature):", "if False:",
             "test_t01_forged_manifests_are_refused"),
    _channel(1, "parse-before-verify", "the manifest is parsed before its signature is verified", TRUST,
             "    if not keys.verify(public_key, raw, signature):",
             "    mf.parse(raw, 'manifest')\n    if not keys.verify(public_key, raw, signature):",
             "test_t01_signature_is_verified_before_any_parsing"),
    _channel(1, "verify-accepts-bad", "a signature that fails to verify counts as valid",
             "mobile_ml/publish/keys.py", "    except (InvalidSignature, ValueError):\n        return False",
             "    except (InvalidSignature, ValueError):\n        return True",
             "test_t01_forged_manifests_are_refused"),
    # 2 wrong file at the right URL: signed sha256 and length
    _channel(2, "no-hash-check", "a downloaded file's sha256 is not compared with the signed one", TRUST,
             "if hashlib.sha256(data).hexdigest() != entry.sha256:", "if False:",
             "test_t02_same_length_swapped_blob_is_refused_by_its_hash"),
    _channel(2, "no-length-check", "a downloaded file's length is not compared with the signed one", TRUST,
             "if len(data) != entry.length:", "if False:", "test_t02_length_is_checked_on_its_own"),
    # 3 rollback and replay
    _channel(3, "no-rollback-check", "a lower manifest_version is accepted", TRUST,
             "if m.manifest_version < last_version:", "if False:",
             "test_t03_older_manifest_is_a_rollback_and_same_version_other_bytes_a_replay"),
    _channel(3, "no-replay-check", "the same manifest_version with other bytes is accepted", TRUST,
             "m.manifest_version == last_version and last_sha256", "False",
             "test_t03_older_manifest_is_a_rollback_and_same_version_other_bytes_a_replay"),
    _channel(3, "forget-last-version", "the client does not pass the version it accepted last", SYNC,
             "last_version=seen.manifest_version if seen else None,", "last_version=None,",
             "test_t15_rollback_moves_devices_back_and_the_real_old_manifest_stays_refused"),
    # 4 freeze: signed expiry against one clock reading
    _channel(4, "no-expiry-check", "an expired manifest is accepted", TRUST,
             "if m.expires <= now:", "if False:", "test_t04_expiry_is_checked_at_the_boundary"),
    _channel(4, "expiry-off-by-one", "a manifest is still accepted at its expiry instant", TRUST,
             "if m.expires <= now:", "if m.expires < now:", "test_t04_expiry_is_checked_at_the_boundary"),
    _channel(4, "clock-read-twice", "the expiry check reads the clock again instead of the check's one reading", SYNC,
             "                now=now,", "                now=cfg.now(),",
             "test_t04_the_clock_is_read_once_per_check"),
    # 5 mix-and-match: the signed document names its model and channel
    _channel(5, "no-channel-check", "a manifest signed for another channel or model is accepted", TRUST,
             "if m.model != model or m.channel != channel:", "if False:",
             "test_t05_another_channels_manifest_is_refused"),
    # 6 endless data: capped reads, never past the signed length
    _channel(6, "uncapped-manifest-read", "the manifest body is read to its end, however long", DOWNLOAD,
             "        while have <= cap:\n"
             "            chunk = self.read_some(resp, min(CHUNK, cap + 1 - have), what, meter)",
             "        while True:\n            chunk = self.read_some(resp, CHUNK, what, meter)",
             "test_t06_manifest_reads_are_capped"),
    _channel(6, "no-size-check", "check_manifest does not refuse an oversized manifest itself", TRUST,
             "if len(raw) > mf.MAX_MANIFEST_BYTES:", "if False:",
             "test_t06_an_oversized_manifest_is_refused_even_when_signed"),
    _channel(6, "signature-uncapped", "the detached signature may be any size", SYNC,
             "MAX_SIGNATURE_BYTES = 1024", "MAX_SIGNATURE_BYTES = 1 << 30", "test_t06_signature_reads_are_capped"),
    _channel(6, "telemetry-reply-uncapped", "the telemetry POST's reply is read to its end", SYNC,
             'conn.read_capped(resp, MAX_TELEMETRY_REPLY, "telemetry reply")', "resp.read()",
             "test_t06_the_telemetry_reply_is_read_with_a_cap"),
    _channel(6, "read-past-length", "a blob download reads whole chunks past the signed length", DOWNLOAD,
             "min(CHUNK, left)", "CHUNK", "test_t06_a_blob_is_never_read_past_its_signed_length"),
    # 7 slow retrieval: timeouts; a stalled download keeps what arrived
    _channel(7, "no-timeout", "requests are opened without a timeout", DOWNLOAD,
             "urllib.request.urlopen(req, timeout=min(self.timeout, self._left(path)))", "urllib.request.urlopen(req)",
             "test_t07_a_silent_server_times_out_and_the_model_stays"),
    _channel(7, "stall-loses-bytes", "a stalled read waits for a full chunk and loses what arrived", DOWNLOAD,
             "chunk = bytes(resp.read1(n))", "chunk = bytes(resp.read(n))",
             "test_t07_a_stalled_body_fails_as_network_and_keeps_its_bytes"),
    # 8 key compromise / rotation
    _channel(8, "keep-trusting-old-key", "after a rotation the device keeps trusting the pinned old key", SYNC,
             "base64.b64encode(keys.public_der(key))", "base64.b64encode(keys.public_der(cfg.public_key))",
             "test_t08_after_a_rotation_the_old_key_is_refused"),
    _channel(8, "unsigned-rotation", "a rotation statement is followed without verifying its signature",
             "mobile_ml/publish/rotation.py",
             "if len(data) > MAX_STATEMENT_BYTES or not keys.verify(trusted_public, data, sig):",
             "if len(data) > MAX_STATEMENT_BYTES:",
             "test_t08_a_rotation_not_signed_by_the_trusted_key_is_not_followed"),
    _channel(8, "no-key-id-check", "a manifest naming another key id is accepted", TRUST,
             "if m.key_id != keys.key_id(public_key):", "if False:",
             "test_t08_a_manifest_must_name_the_key_that_signed_it"),
    # 9 interrupted download: Range + If-Range on a strong ETag, hash after assembly
    _channel(9, "no-resume", "a partial download is thrown away instead of resumed", DOWNLOAD,
             "if 0 < have < entry.length and etag:", "if False:",
             "test_t09_a_cut_download_resumes_with_range_and_if_range"),
    _channel(9, "no-if-range", "the client resumes with Range but without If-Range", DOWNLOAD,
             ', "If-Range": etag}', "}",
             "test_t09_a_cut_download_resumes_with_range_and_if_range",
             "test_t09_a_partial_of_other_content_restarts_in_one_request"),
    _channel(9, "server-ignores-if-range", "the server answers a range even when If-Range names other content",
             SERVER, "if if_range is not None and if_range.strip() != etag:", "if False:",
             "test_t09_the_server_honours_if_range_by_strong_comparison"),
    _channel(9, "server-weak-if-range", "the server compares If-Range weakly (W/ tags match)", SERVER,
             "if_range.strip() != etag:", "if_range.strip().removeprefix('W/') != etag:",
             "test_t09_the_server_honours_if_range_by_strong_comparison"),
    _channel(9, "corrupt-partial-fatal", "a resumed file that fails its hash is not downloaded again", DOWNLOAD,
             "if have == 0:\n                raise", "if True:\n                raise",
             "test_t09_a_corrupt_partial_fails_its_hash_then_downloads_whole"),
    # 10 crash during install: stage, then one atomic pointer switch; previous model kept
    _channel(10, "pointer-before-files", "current.json is switched before the new version is in place", STATE,
             "        tmp.rename(final)\n",
             "        write_pointer(state_dir, version)\n        tmp.rename(final)\n",
             "test_t10_a_crash_at_the_version_rename_keeps_a_loadable_model"),
    _channel(10, "drop-previous", "installing a version deletes the previous one", SYNC,
             "keep={prev})", "keep=set())", "test_t10_the_previous_model_is_kept_beside_the_new_one"),
    # 11 signed but broken model: the health check's verdict is used
    _channel(11, "ignore-health-check", "the health check runs but its result is ignored", SYNC,
             "if not health.ok:", "if False:",
             "test_t11_a_model_that_loads_but_answers_wrong_is_not_switched_to"),
    # 12 publisher: create-only writes, compare-and-swap of the channel
    _channel(12, "local-overwrite", "create-only writes in a local root overwrite", STORAGE,
             "self._write(path, data, create_only=True)", "self._write(path, data)",
             "test_t12_history_cannot_be_overwritten_in_a_local_root"),
    _channel(12, "s3-overwrite", "create-only writes on S3 are sent without If-None-Match", STORAGE,
             '                IfNoneMatch="*",\n', "", "test_t12_history_cannot_be_overwritten_in_s3"),
    _channel(12, "exists-is-fine", "a create-only write that finds other bytes reports success", STORAGE,
             "if storage.read(path) == data:", "if True:",
             "test_t12_history_cannot_be_overwritten_in_a_local_root"),
    _channel(12, "signature-before-manifest", "the channel's new signature is written before its manifest",
             "mobile_ml/publish/channel.py",
             "        storage.replace(path, data, state.tag)\n",
             "        storage.put(path + '.sig', sig)\n        storage.replace(path, data, state.tag)\n",
             "test_t12_a_publisher_dying_at_the_manifest_write_leaves_the_old_manifest_usable"),
    _channel(12, "local-no-cas", "the local channel write skips its compare-and-swap", STORAGE,
             "if self.tag(path) != expected:", "if False:",
             "test_t12_the_channel_is_replaced_only_by_compare_and_swap[local]"),
    _channel(12, "s3-no-cas", "the S3 channel write is sent without If-Match / If-None-Match", STORAGE,
             'condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}', "condition = {}",
             "test_t12_the_channel_is_replaced_only_by_compare_and_swap[s3]"),
    # 13 stale CDN copy: short max-age + ETag for manifests, immutable blobs
    _channel(13, "manifest-immutable", "channel manifests are cached like blobs (a year, immutable)", STORAGE,
             'SHORT = "public, max-age=60, must-revalidate"', "SHORT = IMMUTABLE",
             "test_t13_cache_headers_etags_and_304"),
    _channel(13, "blobs-not-immutable", "every path gets the manifests' short max-age", STORAGE,
             'return SHORT if "/channels/" in f"/{path}" else IMMUTABLE', "return SHORT",
             "test_t13_cache_headers_etags_and_304"),
    _channel(13, "no-etag", "responses carry no ETag", SERVER,
             'headers = {"ETag": etag, ', "headers = {", "test_t13_cache_headers_etags_and_304"),
    _channel(13, "stale-etag", "a changed manifest keeps its old cached ETag", SERVER,
             "if hit and hit[0] == key:", "if hit:", "test_t13_cache_headers_etags_and_304"),
    _channel(13, "no-304", "If-None-Match never gives 304", SERVER,
             "if inm is not None and etag_matches(inm, etag):", "if False:",
             "test_t13_cache_headers_etags_and_304"),
    Mutant("t13-no-304-fast-lane", "channel", "the manifest fast lane never answers 304 (the long way each time)",
           SERVER, "        if if_none_match == raw_etag:  # the device sends back exactly the tag it got: no parsing\n"
           "            return headers\n", "        return None\n",
           ("tests/test_serve_workers.py::test_the_lane_does_no_hashing_and_no_path_resolution",)),
    # 14 rollout: one bucketing rule; raising the percentage keeps everyone in; halt
    _channel(14, "bucket-endianness", "the bucket reads the digest little-endian", MANIFEST,
             'int.from_bytes(digest[:8], "big")', 'int.from_bytes(digest[:8], "little")',
             "test_t14_bucketing_vectors_and_the_boundary"),
    _channel(14, "bucket-boundary", "a device whose bucket equals percent × 100 is let in", MANIFEST,
             "< round(percent * 100)", "<= round(percent * 100)", "test_t14_bucketing_vectors_and_the_boundary"),
    _channel(14, "rollout-new-salt", "raising the rollout draws a new salt (devices drop out)", PUBLISHER,
             "        salt=m.rollout.salt,\n", "        salt=mf.new_salt(),\n",
             "test_t14_raising_the_rollout_keeps_everyone_already_in"),
    _channel(14, "ignore-halt", "a halted rollout still lets new devices in", TRUST,
             "if m.rollout.halted:", "if False:", "test_t14_a_halted_rollout_lets_no_new_device_in"),
    # 15 operator rollback: a new, higher manifest that points at the old release
    _channel(15, "rollback-keeps-release", "rollback re-signs the current release instead of the fallback",
             PUBLISHER, "release=target,", "release=st.current.release,",
             "test_t15_rollback_moves_devices_back_and_the_real_old_manifest_stays_refused"),
    # 16 incompatible model, full disk: checked before the download
    _channel(16, "no-app-version-check", "min_app_version is not checked", FITS,
             "if version_key(release.min_app_version) > parse_version(app_version):", "if False:",
             "test_t16_too_old_app_is_skipped_before_download"),
    _channel(16, "no-runtime-check", "the release's runtime is not checked", FITS,
             'if release.runtime.name != "litert":', "if False:",
             "test_t16_another_runtime_is_skipped_before_download"),
    _channel(16, "no-space-check", "free space is not checked before the download", FITS,
             "    if free < need:", "    if free < 0:", "test_t16_too_little_space_is_skipped_before_download"),
)  # fmt: skip

FAULTS: tuple[Mutant, ...] = (
    _fault(7, "no-deadline", "a check has no overall deadline", DOWNLOAD,
           "        if left <= 0:\n", "        if False:\n",
           CF + "test_manifest_dripped_one_byte_a_second_is_cut_off_by_the_deadline"),
    _fault(7, "no-minimum-rate", "a transfer under the minimum rate goes on", DOWNLOAD,
           "if self.count < self.min_rate * elapsed:", "if False:",
           CF + "test_blob_under_the_minimum_rate_is_cut_off_and_resumed"),
    _fault(3, "state-without-backup", "no second copy of the device state is written", STATE,
           "    write_bytes(state_dir / BACKUP, data)\n", "",
           CF + "test_damaged_state_is_rebuilt_and_a_replayed_old_manifest_still_refused"),
    _fault(10, "no-install-check", "the installed files are not checked, so damage is never repaired", STATE,
           "            if len(data) != length or hashlib.sha256(data).hexdigest() != sha256:", "            if False:",
           CF + "test_damaged_install_is_repaired_from_the_manifest"),
    _fault(16, "no-runtime-min-version", "runtime.min_version is not compared with the device's LiteRT", FITS,
           "if have is None or version_key(release.runtime.min_version) > have:", "if False:",
           CF + "test_runtime_min_version_is_checked"),
    _fault(14, "no-leftover-cleanup", "a crash-left version copy keeps its space for ever", STATE,
           '        for d in versions.glob(".*.tmp"):\n            shutil.rmtree(d, ignore_errors=True)\n',
           '        for d in versions.glob(".*.tmp"):\n            pass\n',
           CF + "test_a_crash_left_version_copy_is_removed_before_the_space_check"),
    _fault(4, "unbounded-expiry", "any --expires-days is signed, already-expired ones included", MANIFEST,
           "MIN_EXPIRY_DAYS <= days <= MAX_EXPIRY_DAYS)", "True)",
           PC + "test_refresh_and_publish_refuse_an_expiry_devices_would_refuse"),
    _fault(12, "verify-ignores-keys", "release verify does not look for private keys in the root", VERIFY,
           "if path.rsplit(\"/\", 1)[-1] in _KEY_NAMES or _PRIVATE_PEM.search(data):", "if False:",
           PC + "test_verify_names_private_keys_and_foreign_files"),
    _fault(12, "verify-ignores-foreign-files", "release verify accepts files that are not the protocol's", VERIFY,
           "        elif not is_protocol_path(path):", "        elif False:",
           PC + "test_verify_names_private_keys_and_foreign_files"),
    _fault(12, "no-commit-grace", "a command restores a channel another publisher is still committing", RECOVER,
           "if age is not None and age < COMMIT_GRACE_SECONDS:", "if False:",
           PC + "test_a_fresh_unsigned_channel_is_another_publisher_committing_and_is_left_alone"),
)  # fmt: skip

MUTANTS: tuple[Mutant, ...] = STAGES + CHANNEL + FAULTS
