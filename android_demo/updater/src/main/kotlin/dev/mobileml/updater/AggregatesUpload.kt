package dev.mobileml.updater

/**
 * The aggregates part of a sync, as `mobile_ml/client/upload.py` does it: [Aggregator.snapshot] (persisted through
 * [save] before it is sent, so a retry sends the same id and counts), `POST /v1/aggregates` with the install's hash
 * in `X-Install-Id-Hash`, then [Aggregator.acknowledge] only once the server answered 202. A refused, failed or
 * timed-out upload keeps the snapshot for the next sync; inferences meanwhile go into the new window. The server
 * stores a snapshot once per install, so a lost 202 costs only a second upload. Never throws for the network or the
 * server, and never fails a check: the result says what happened.
 */
class AggregatesUpload(private val config: UpdaterConfig) {
    enum class Outcome(val wire: String) {
        UPLOADED("uploaded"),  // the snapshot was stored (202) and forgotten here
        NOTHING("nothing"),  // no counts since the last upload
        KEPT("kept"),  // not stored: it stays for the next sync
        OFF("off")  // telemetry is off: nothing leaves the device
    }

    class Result(val outcome: Outcome, val observations: Long = 0, val detail: String = "")

    /** Upload [aggregator]'s pending counts; [save] gets its [Aggregator.stateJson] whenever it changed. */
    fun upload(aggregator: Aggregator, save: (String) -> Unit): Result {
        if (!config.sendTelemetry) return Result(Outcome.OFF)
        val snap = synchronized(aggregator) { aggregator.snapshot()?.also { save(aggregator.stateJson()) } }
            ?: return Result(Outcome.NOTHING)
        val id = snap.snapshotId ?: return Result(Outcome.NOTHING)
        val headers = LinkedHashMap<String, String>()
        headers[INSTALL_HEADER] = Codec.sha256Hex(config.installId.toByteArray(Charsets.UTF_8))  // as telemetry's hash
        config.telemetryToken?.let { headers["Authorization"] = "Bearer $it" }
        val pace = Pace.start(config)
        val status = try {
            Http(config.baseUrl, config.timeoutMillis) { pace }.post(
                ENDPOINT, "application/json", snap.toJson().toByteArray(Charsets.UTF_8), headers)
        } catch (e: java.io.IOException) {
            return Result(Outcome.KEPT, detail = "network: ${e.javaClass.simpleName} (counts kept)")
        } catch (e: UpdateFailed) {
            return Result(Outcome.KEPT, detail = "${e.reason} (counts kept)")
        }
        if (status != 202) return Result(Outcome.KEPT, detail = "http_$status (counts kept)")
        synchronized(aggregator) {
            aggregator.acknowledge(id)
            save(aggregator.stateJson())
        }
        return Result(Outcome.UPLOADED, snap.count)
    }

    companion object {
        const val ENDPOINT = "v1/aggregates"
        const val INSTALL_HEADER = "X-Install-Id-Hash"  // = mobile_ml.client.upload.INSTALL_HEADER
    }
}
