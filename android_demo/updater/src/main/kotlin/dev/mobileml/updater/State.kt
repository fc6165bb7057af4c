package dev.mobileml.updater

/**
 * `state.json` read as strictly as `mobile_ml/contracts/state.py` reads it: what the device accepted per channel
 * (anti-rollback) and the key a rotation handed over to (trust). A state that is truncated, empty, `[]`, or holds a
 * list where an object belongs is refused, never read as "nothing seen yet": that would accept a replayed old
 * manifest and forget the rotated key.
 */
internal object DeviceState {
    const val SCHEMA = "mobile_ml.device_state"
    private val CHANNEL_KEY = Regex("${Manifest.NAME.pattern}/${Manifest.NAME.pattern}")
    private val ETAG = Regex("[\\x20-\\x7e]{1,1024}")  // sent back in a header: printable ASCII only
    private val B64_KEY = Regex("[A-Za-z0-9+/]{40,1024}={0,2}")
    private val OUTCOMES = setOf("installed", "up_to_date", "not_modified", "skipped", "rejected", "failed", "error")

    /** [raw] if it is a device state, else `UpdateFailed("state_unreadable")` naming the file and the field. */
    fun check(raw: Any?, file: String = "state.json"): Map<String, Any?> {
        try {
            val doc = raw as? Map<*, *> ?: throw Rejected("malformed", "not a JSON object")
            val f = Fields(doc, "")
            if (doc.containsKey("schema")) {  // files written before the schema key existed have none
                if (f.string("schema") != SCHEMA) throw f.error("schema", "is not $SCHEMA")
                f.integer("schema_version", 1, 1)
            }
            val channels = f.value("channels", optional = true)
            if (channels != null) {
                for ((key, value) in f.mapping("channels")) {
                    if (!CHANNEL_KEY.matches(key)) throw f.error("channels.${key.take(60)}", "is not MODEL/CHANNEL")
                    checkSeen(Fields(value, "channels.$key"))
                }
            }
            val last = f.value("last_check", optional = true)?.let { Fields(it, "last_check") }
            f.optString("trusted_key_b64", B64_KEY, 1026)
            f.optString("current", Semver.PATTERN, 64)
            f.optString("previous", Semver.PATTERN, 64)
            if (last != null) checkLastCheck(last)
            f.done()
            @Suppress("UNCHECKED_CAST")
            return doc as Map<String, Any?>
        } catch (e: Rejected) {
            throw UpdateFailed("state_unreadable", "$file: ${e.detail}")
        }
    }

    private fun checkSeen(f: Fields) {
        f.integer("manifest_version", 1, Manifest.MAX_SAFE_INT)
        f.string("manifest_sha256", Manifest.SHA256)
        f.optString("manifest_etag", ETAG, 1024)
        f.optString("current", Semver.PATTERN, 64)
        f.done()
    }

    private fun checkLastCheck(f: Fields) {
        Manifest.readTime(f, "time")
        val outcome = f.string("outcome")
        if (outcome !in OUTCOMES) throw f.error("outcome", "'$outcome' is not an outcome")
        f.optString("reason", null, 64)
        f.done()
    }
}
