package dev.mobileml.updater

import java.io.File
import java.io.FileInputStream
import java.io.IOException
import java.security.MessageDigest
import java.security.PublicKey

/**
 * The device side of `docs/update-protocol.md` §5, step by step, as `mobile_ml.client.sync` does it.
 * [sync] is blocking (call it from a worker thread) and never throws for network, server or content problems:
 * they are [SyncResult]s, and the current model always stays usable. With a [capture] queue, each verified manifest's
 * capture policy is noted in it and, after the check, the queue is uploaded (only with consent and a policy on).
 */
class Updater(val config: UpdaterConfig, private val healthCheck: HealthCheck,
              private val listener: UpdateListener? = null, private val capture: CaptureQueue? = null) {
    private val pinned: PublicKey = Keys.fromBase64(config.publicKeyB64)
    private val store = Store(config.stateDir)
    private var pace = Pace.start(config)  // restarted by every check
    private val http = Http(config.baseUrl, config.timeoutMillis) { pace }
    private val downloader = Downloader(store, http, listener)
    private val channelKey = "${config.model}/${config.channel}"
    private val manifestPath = "${config.model}/channels/${config.channel}.json"

    /**
     * The installed model the app should run, or null when there is none or its files are damaged (then it runs
     * the bundled one). It hashes the installed files: call it off the main thread.
     */
    fun current(): InstalledModel? = store.current()

    fun lastCheck(): LastCheck? {
        val state = store.peekState() ?: return null  // unreadable: the next check says so
        val c = state["last_check"] as? Map<*, *> ?: return null
        return LastCheck(c["time"] as? String ?: "", c["outcome"] as? String ?: "", c["reason"] as? String)
    }

    /**
     * One check. Before anything else it looks at the device (§5 step 0): a damaged state.json is rebuilt from its
     * backup, and installed files that no longer match their release make the device count as running nothing, so
     * the release is downloaded again. Each repair is named in [SyncResult.repairs].
     */
    @Synchronized
    fun sync(): SyncResult {
        val now = config.clock()  // one clock reading for the whole check
        pace = Pace.start(config)
        val opened = try {
            store.open()
        } catch (e: UpdateFailed) {
            // Fail closed: no check runs on a state that cannot be read (its anti-rollback versions and rotated key
            // would be lost), and the files stay as they are for a look; as mobile_ml.client.sync does.
            val r = SyncResult(Outcome.FAILED, null, null, "state_unreadable", e.detail, null)
            if (config.sendTelemetry) report(r)
            return r
        }
        val state = opened.state
        store.cleanLeftovers()
        val installed = state["current"] != null || store.pointer.exists()
        val damaged = installed && store.installedProblem() != null
        val running = if (damaged) null else state["current"] as? String
        val checked = try {
            check(state, now, running)
        } catch (e: Rejected) {
            failure(Outcome.REJECTED, running, state, e.reason, e.detail)
        } catch (e: UpdateFailed) {
            val skipped = e.reason == "app_too_old" || e.reason == "runtime" || e.reason == "no_space"
            failure(if (skipped) Outcome.SKIPPED else Outcome.FAILED, running, state, e.reason, e.detail)
        } catch (e: IOException) {  // the device's own storage: full, read-only, removed
            failure(Outcome.FAILED, running, state, "io", "${e.javaClass.simpleName}: ${e.message}")
        }
        val changed = damaged || !installed || checked.outcome == Outcome.INSTALLED  // else: whole, as checked above
        val whole = !changed || store.installedProblem() == null
        val repairs = if (damaged && whole) opened.repairs + Repair.MODEL_REINSTALLED else opened.repairs
        val detail = if (checked.detail.isEmpty()) opened.note else checked.detail
        val r = SyncResult(checked.outcome, if (whole) checked.current else null, checked.previous, checked.reason, detail,
                           checked.manifestVersion, repairs)
        state["last_check"] = mapOf("time" to Manifest.formatTime(now), "outcome" to r.outcome.wire, "reason" to r.reason)
        try {
            store.saveState(state)
        } catch (e: UpdateFailed) {
            // the check's own result is what matters; the next check rewrites the state
        }
        if (config.sendTelemetry) report(r)
        capture?.upload(config)  // never fails the check: a batch the server did not store stays queued
        return r
    }

    private fun failure(outcome: Outcome, running: String?, state: Map<String, Any?>, reason: String, detail: String) =
        SyncResult(outcome, running, state["previous"] as? String, reason, detail, null)

    /** Telemetry is best effort: whatever the server answers, it is never the check's failure. */
    private fun report(r: SyncResult) {
        val event = when (r.outcome) {
            Outcome.INSTALLED -> "update_applied"
            Outcome.REJECTED, Outcome.FAILED -> "update_failed"
            else -> "update_check"
        }
        Telemetry(config).send(listOf(TelemetryEvent(event, r.current ?: "none", null, r.reason)))
    }

    /** A verified manifest, the bytes it was verified over, their ETag and the key that verified them. */
    private class Fetched(val manifest: Manifest, val raw: ByteArray, val etag: String?, val key: PublicKey)

    /** The check proper; [running] is the installed version when its files are whole, else null. */
    private fun check(state: MutableMap<String, Any?>, now: Long, running: String?): SyncResult {
        val current = running
        val previous = state["previous"] as? String
        // What this device accepted from this channel: versions count per channel, and a device may switch.
        @Suppress("UNCHECKED_CAST")
        val channels = LinkedHashMap(state["channels"] as? Map<String, Any?> ?: emptyMap())
        state["channels"] = channels
        val seen = channels[channelKey] as? Map<*, *> ?: emptyMap<String, Any?>()
        val fetched = fetchManifest(state, seen, current, now)
            ?: return SyncResult(Outcome.NOT_MODIFIED, current, previous, null, "", seen["manifest_version"] as? Long)
        val m = fetched.manifest
        try {  // as mobile_ml.client.sync: every verified manifest's policy, before the release is chosen
            capture?.noteManifest(config.model, config.channel, config.installId, m.capture)
        } catch (e: UpdateFailed) {
            // capture.json cannot be written: capture is never the check's failure (the server checks the policy)
        }
        // 5. Which release this device runs.
        val release = Trust.selectRelease(m, config.installId, current)
        if (release == null || release.version == current) {
            accept(state, channels, fetched, current)
            return SyncResult(Outcome.UP_TO_DATE, current, previous, null, "", m.manifestVersion)
        }
        // a repair of the running version keeps its previous; a damaged version is nobody's previous
        val keep = if (release.version == state["current"] || current == null) previous else current
        checkFits(release)
        install(release, keep)
        accept(state, channels, fetched, release.version)  // only once the whole check succeeded
        state["previous"] = keep
        state["current"] = release.version
        return SyncResult(Outcome.INSTALLED, release.version, keep, null, "", m.manifestVersion)
    }

    private fun accept(state: MutableMap<String, Any?>, channels: MutableMap<String, Any?>, f: Fetched,
                       running: String?) {
        channels[channelKey] = mapOf("manifest_version" to f.manifest.manifestVersion,
                                     "manifest_sha256" to Codec.sha256Hex(f.raw), "manifest_etag" to f.etag,
                                     "current" to running)
        state["trusted_key_b64"] = Keys.toBase64(f.key)
    }

    /**
     * Steps 1-4: conditional GET of the manifest (null: 304), then signature before parsing. The 304 shortcut only
     * holds while the model running is the one this channel's manifest chose (not after a first install, nor after
     * another channel's). One refetch, because the manifest and its signature are written in turn.
     */
    private fun fetchManifest(state: Map<String, Any?>, seen: Map<*, *>, current: String?, now: Long): Fetched? {
        val etag = seen["manifest_etag"] as? String
        val conditional = if (etag != null && current != null && seen["current"] == current) {
            mapOf("If-None-Match" to etag)
        } else {
            emptyMap()
        }
        var resp = http.open(manifestPath, conditional)
        if (resp.status == 304) {
            resp.close()
            return null
        }
        for (attempt in 1..2) {
            val newEtag = resp.header("ETag")
            val raw = http.readCapped(resp, Manifest.MAX_BYTES, "manifest")
            val sig = http.readCapped(http.open("$manifestPath.sig"), MAX_SIGNATURE_BYTES, "signature")
            val key = signingKey(state, raw)
            try {
                val m = Trust.checkManifest(raw, sig, key, now, config.model, config.channel,
                                            seen["manifest_version"] as? Long, seen["manifest_sha256"] as? String)
                return Fetched(m, raw, newEtag, key)
            } catch (e: Rejected) {
                if (e.reason != "bad_signature" || attempt == 2) throw e
                resp = http.open(manifestPath)
            }
        }
        throw IllegalStateException("unreachable")
    }

    /** Step 6: can this app run the release, and is there room? */
    private fun checkFits(release: Release) {
        if (Semver.compare(release.minAppVersion, config.appVersion) > 0) {
            throw UpdateFailed("app_too_old", "${release.version} needs app ≥ ${release.minAppVersion}")
        }
        if (release.runtimeName != "litert") throw UpdateFailed("runtime", "${release.version} needs ${release.runtimeName}")
        val have = config.runtimeVersion?.let { Semver.runtimeKey(it) }
        if (have == null || Semver.compare(release.runtime.minVersion, have) > 0) {
            throw UpdateFailed("runtime", "${release.version} needs LiteRT ≥ ${release.runtime.minVersion}, " +
                "this device has ${config.runtimeVersion}")
        }
        val need = 2 * release.totalLength
        if (config.stateDir.usableSpace < need) throw UpdateFailed("no_space", "$need bytes needed")
    }

    /**
     * Steps 7-9: download and verify, health-check, then switch. Verified files are not kept for another try:
     * installed, or known bad. A cut download keeps its partial file, and the next check resumes it.
     */
    private fun install(release: Release, keep: String?) {
        val files = LinkedHashMap<String, File>()
        for (f in release.files) files[f.name] = downloader.download(f)
        try {
            val staged = store.stage(release, files)
            try {
                runHealthCheck(staged)
                store.commit(release.version, staged, keep)
            } finally {
                staged.deleteRecursively()
            }
        } finally {
            for (f in release.files) {
                File(store.staging, "${f.sha256}.part").delete()
                File(store.staging, "${f.sha256}.etag").delete()
            }
        }
    }

    private fun runHealthCheck(staged: File) {
        val metadata = try {
            Json.parseObject(File(staged, "metadata.json").readBytes())
        } catch (e: IOException) {
            throw UpdateFailed("health_check", "the release has no readable metadata.json")
        } catch (e: Json.ParseError) {
            throw UpdateFailed("health_check", "metadata.json: ${e.message}")
        }
        val health = try {
            healthCheck.check(File(staged, "model.tflite"), metadata)
        } catch (e: Exception) {  // a model the runtime cannot load is a failed update, not a crashed app
            HealthResult(false, "${e.javaClass.simpleName}: ${e.message}")
        }
        if (!health.ok) throw UpdateFailed("health_check", health.detail)
    }

    /** The trusted key, or the key that a rotation statement signed by it names (one step per check). */
    private fun signingKey(state: Map<String, Any?>, raw: ByteArray): PublicKey {
        val trusted = (state["trusted_key_b64"] as? String)?.let {
            try {
                Keys.fromBase64(it)
            } catch (e: IllegalArgumentException) {
                null
            }
        } ?: pinned
        val claimed = Trust.claimedKeyId(raw)
        if (claimed == null || claimed == Keys.keyId(trusted)) return trusted
        val path = Rotation.statementPath(config.model, claimed)
        return try {
            val data = http.readCapped(http.open(path), Rotation.MAX_BYTES, "key rotation")
            val sig = http.readCapped(http.open("$path.sig"), MAX_SIGNATURE_BYTES, "key rotation signature")
            Rotation.checkStatement(data, sig, trusted, config.model, claimed) ?: trusted
        } catch (e: UpdateFailed) {
            trusted  // no statement: the manifest then fails verification with the trusted key
        } catch (e: Rejected) {
            trusted
        }
    }

    companion object {
        const val CHUNK = 8 * 1024  // per read, and so per progress callback
        const val MAX_SIGNATURE_BYTES = 1024

        /** [Trust.checkFile] for a file on disk, hashed as a stream (a model need not fit in memory twice). */
        fun checkFile(file: File, entry: FileEntry) = Trust.checkDigest(file.length(), {
            val digest = MessageDigest.getInstance("SHA-256")
            FileInputStream(file).use { input ->
                val buf = ByteArray(CHUNK)
                while (true) {
                    val n = input.read(buf)
                    if (n < 0) break
                    digest.update(buf, 0, n)
                }
            }
            Codec.hex(digest.digest())
        }, entry)
    }
}
