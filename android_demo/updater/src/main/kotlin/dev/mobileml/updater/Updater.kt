package dev.mobileml.updater

import java.io.File
import java.io.FileInputStream
import java.io.FileOutputStream
import java.io.IOException
import java.security.MessageDigest
import java.security.PublicKey

/**
 * The device side of `docs/update-protocol.md` §5, step by step, as `mobile_ml.client.sync` does it.
 * [sync] is blocking (call it from a worker thread) and never throws for network, server or content problems:
 * they are [SyncResult]s, and the current model always stays usable.
 */
class Updater(val config: UpdaterConfig, private val healthCheck: HealthCheck,
              private val listener: UpdateListener? = null) {
    private val pinned: PublicKey = Keys.fromBase64(config.publicKeyB64)
    private val store = Store(config.stateDir)
    private val http = Http(config.baseUrl, config.timeoutMillis)

    /** The installed model the app should run, or null (then it runs the bundled one). */
    fun current(): InstalledModel? = store.current()

    fun lastCheck(): LastCheck? {
        val c = store.loadState()["last_check"] as? Map<*, *> ?: return null
        return LastCheck(c["time"] as? String ?: "", c["outcome"] as? String ?: "", c["reason"] as? String)
    }

    @Synchronized
    fun sync(): SyncResult {
        val now = config.clock()  // one clock reading for the whole check
        var state: MutableMap<String, Any?> = LinkedHashMap()
        val r = try {
            store.prepare()
            state = store.loadState()
            check(state, now)
        } catch (e: Rejected) {
            SyncResult(Outcome.REJECTED, state["current"] as? String, state["previous"] as? String, e.reason, e.detail,
                       null)
        } catch (e: UpdateFailed) {
            val skipped = e.reason == "app_too_old" || e.reason == "runtime" || e.reason == "no_space"
            SyncResult(if (skipped) Outcome.SKIPPED else Outcome.FAILED, state["current"] as? String,
                       state["previous"] as? String, e.reason, e.detail, null)
        } catch (e: IOException) {  // the device's own storage: full, read-only, removed
            SyncResult(Outcome.FAILED, state["current"] as? String, state["previous"] as? String, "io",
                       "${e.javaClass.simpleName}: ${e.message}", null)
        }
        state["last_check"] = mapOf("time" to Manifest.formatTime(now), "outcome" to r.outcome.wire, "reason" to r.reason)
        try {
            store.saveState(state)
        } catch (e: UpdateFailed) {
            // the check's own result is what matters; the next check rewrites the state
        }
        if (config.sendTelemetry) {
            val event = when (r.outcome) {
                Outcome.INSTALLED -> "update_applied"
                Outcome.REJECTED, Outcome.FAILED -> "update_failed"
                else -> "update_check"
            }
            Telemetry(config).send(listOf(TelemetryEvent(event, r.current ?: "none", null, r.reason)))
        }
        return r
    }

    private fun check(state: MutableMap<String, Any?>, now: Long): SyncResult {
        val current = state["current"] as? String
        val previous = state["previous"] as? String
        val path = "${config.model}/channels/${config.channel}.json"

        // What this device accepted from this channel: versions count per channel, and a device may switch.
        val channelKey = "${config.model}/${config.channel}"
        @Suppress("UNCHECKED_CAST")
        val channels = LinkedHashMap(state["channels"] as? Map<String, Any?> ?: emptyMap())
        state["channels"] = channels
        val seen = channels[channelKey] as? Map<*, *> ?: emptyMap<String, Any?>()

        // 1. Conditional GET of the manifest; the 304 shortcut only holds while the model running is the one this
        // channel's manifest chose (not after a first install, nor after another channel's).
        val etag = seen["manifest_etag"] as? String
        val conditional = if (etag != null && current != null && seen["current"] == current) {
            mapOf("If-None-Match" to etag)
        } else {
            emptyMap()
        }
        var resp = http.open(path, conditional)
        if (resp.status == 304) {
            resp.close()
            return SyncResult(Outcome.NOT_MODIFIED, current, previous, null, "", seen["manifest_version"] as? Long)
        }
        // 2-4. Signature before parsing; one refetch, because the manifest and its signature are written in turn.
        var accepted: Manifest? = null
        var raw = ByteArray(0)
        var newEtag: String? = null
        var key = pinned
        for (attempt in 1..2) {
            newEtag = resp.header("ETag")
            raw = http.readCapped(resp, Manifest.MAX_BYTES, "manifest")
            val sig = http.readCapped(http.open("$path.sig"), MAX_SIGNATURE_BYTES, "signature")
            key = signingKey(state, raw)
            try {
                accepted = Trust.checkManifest(raw, sig, key, now, config.model, config.channel,
                                               seen["manifest_version"] as? Long, seen["manifest_sha256"] as? String)
                break
            } catch (e: Rejected) {
                if (e.reason != "bad_signature" || attempt == 2) throw e
                resp = http.open(path)
            }
        }
        val m = accepted!!
        fun accept(running: String?) {  // only once the whole check succeeded or found nothing to do
            channels[channelKey] = mapOf("manifest_version" to m.manifestVersion, "manifest_sha256" to Codec.sha256Hex(raw),
                                         "manifest_etag" to newEtag, "current" to running)
            state["trusted_key_b64"] = Keys.toBase64(key)
        }
        // 5. Which release this device runs.
        val release = Trust.selectRelease(m, config.installId, current)
        if (release == null || release.version == current) {
            accept(current)
            return SyncResult(Outcome.UP_TO_DATE, current, previous, null, "", m.manifestVersion)
        }
        // 6. Can this app run it, and is there room?
        if (Semver.compare(release.minAppVersion, config.appVersion) > 0) {
            throw UpdateFailed("app_too_old", "${release.version} needs app ≥ ${release.minAppVersion}")
        }
        if (release.runtimeName != "litert") throw UpdateFailed("runtime", "${release.version} needs ${release.runtimeName}")
        val need = 2 * release.totalLength
        if (config.stateDir.usableSpace < need) throw UpdateFailed("no_space", "$need bytes needed")
        // 7. Download and verify. A cut download keeps its partial file, and the next check resumes it.
        val files = LinkedHashMap<String, File>()
        for (f in release.files) files[f.name] = download(f)
        // 8-9. Health-check, then switch. Verified files are not kept for another try: installed, or known bad.
        try {
            val staged = store.stage(release.version, files)
            try {
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
                store.commit(release.version, staged, current)
            } finally {
                staged.deleteRecursively()
            }
        } finally {
            for (f in release.files) {
                File(store.staging, "${f.sha256}.part").delete()
                File(store.staging, "${f.sha256}.etag").delete()
            }
        }
        accept(release.version)
        state["previous"] = current
        state["current"] = release.version
        return SyncResult(Outcome.INSTALLED, release.version, current, null, "", m.manifestVersion)
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

    /**
     * Resumable download of one signed file into staging: `Range` + `If-Range` with the stored strong ETag, never
     * past the signed length, then length and sha256. A partial file that turns out corrupt is dropped and the
     * file fetched once more from scratch.
     */
    private fun download(entry: FileEntry): File {
        val part = File(store.staging, "${entry.sha256}.part")
        val etagFile = File(store.staging, "${entry.sha256}.etag")
        if (part.length() == entry.length) {  // complete from an earlier check that failed on another file
            try {
                checkFile(part, entry)
                return part
            } catch (e: Rejected) {
                part.delete()
            }
        }
        for (attempt in 1..2) {
            var have = if (part.exists()) part.length() else 0L
            var headers = emptyMap<String, String>()
            if (have in 1 until entry.length && etagFile.exists()) {
                headers = mapOf("Range" to "bytes=$have-", "If-Range" to etagFile.readText())
            } else if (have >= entry.length) {
                part.delete()
                have = 0
            }
            val resp = http.open(entry.url, headers)
            try {
                val append: Boolean
                val total: String?
                val range = resp.header("Content-Range") ?: ""
                if (resp.status == 206 && range.startsWith("bytes $have-")) {
                    append = true
                    total = range.substringAfterLast('/')
                } else {
                    append = false  // 200: the whole file (no resume, or the content changed)
                    have = 0
                    total = resp.header("Content-Length")
                }
                if (total != null && total.toLongOrNull() != null && total.toLong() != entry.length) {
                    part.delete()
                    etagFile.delete()
                    throw Rejected("length_mismatch", "${entry.url}: server has $total bytes, signed ${entry.length}")
                }
                resp.header("ETag")?.let { etagFile.writeText(it) }
                listener?.onStart(entry.name, have, entry.length)
                copyCapped(resp, part, append, have, entry)
            } finally {
                resp.close()
            }
            try {
                checkFile(part, entry)
                return part
            } catch (e: Rejected) {
                part.delete()
                etagFile.delete()
                if (attempt == 2 || have == 0L) throw e
            }
        }
        throw IllegalStateException("unreachable")
    }

    private fun copyCapped(resp: Response, part: File, append: Boolean, start: Long, entry: FileEntry) {
        var have = start
        FileOutputStream(part, append).use { out ->
            val buf = ByteArray(CHUNK)
            try {
                while (have < entry.length) {
                    val n = resp.body.read(buf, 0, minOf(buf.size.toLong(), entry.length - have).toInt())
                    if (n < 0) break
                    out.write(buf, 0, n)
                    have += n
                    notify(entry, have)
                }
            } catch (e: IOException) {
                throw UpdateFailed("network", "${entry.url}: ${e.javaClass.simpleName}: ${e.message} (will resume)")
            } finally {
                out.flush()
                out.fd.sync()
            }
        }
        if (have < entry.length) {
            throw UpdateFailed("network", "${entry.url}: connection closed with ${entry.length - have} bytes to go (will resume)")
        }
    }

    private fun notify(entry: FileEntry, have: Long) {
        val l = listener ?: return
        try {
            l.onProgress(entry.name, have, entry.length)
        } catch (e: Exception) {
            throw UpdateFailed("interrupted", "${entry.name}: stopped at $have of ${entry.length} bytes (will resume)")
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
