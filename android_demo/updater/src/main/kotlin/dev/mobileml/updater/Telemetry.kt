package dev.mobileml.updater

/** One event for `POST /v1/telemetry`; [event] is update_check, update_applied, update_failed or inference. */
class TelemetryEvent(val event: String, val version: String, val latencyMs: Double? = null,
                     val errorCode: String? = null)

/**
 * Best-effort device telemetry: never affects the model, never throws. Only the sha256 of the install id leaves
 * the device; the server refuses anything that looks like a raw id.
 */
class Telemetry(private val config: UpdaterConfig) {
    fun send(events: List<TelemetryEvent>): Boolean {
        if (events.isEmpty()) return true
        val idHash = Codec.sha256Hex(config.installId.toByteArray(Charsets.UTF_8))
        val body = mapOf("events" to events.take(MAX_EVENTS).map { e ->
            val m = LinkedHashMap<String, Any?>()
            m["install_id_hash"] = idHash
            m["model"] = config.model
            m["version"] = e.version
            m["app_version"] = config.appVersion
            m["device_model"] = config.deviceModel
            m["channel"] = config.channel  // `telemetry summary` and `release status` count devices per channel
            m["event"] = e.event
            if (e.latencyMs != null) m["latency_ms"] = e.latencyMs
            if (e.errorCode != null) m["error_code"] = e.errorCode
            m
        })
        val pace = Pace.start(config)  // a slow or endless reply is cut like any other transfer
        val auth = config.telemetryToken?.let { mapOf("Authorization" to "Bearer $it") } ?: emptyMap()
        return try {
            Http(config.baseUrl, config.timeoutMillis) { pace }.post("v1/telemetry", "application/json",
                                                                     Json.write(body).toByteArray(Charsets.UTF_8), auth) in 200..299
        } catch (e: java.io.IOException) {
            false
        } catch (e: UpdateFailed) {  // the reply was too slow: telemetry never holds up or fails a check
            false
        }
    }

    companion object {
        const val MAX_EVENTS = 100  // the server's limit per request
    }
}
