package dev.mobileml.updater

import java.text.SimpleDateFormat
import java.util.Locale
import java.util.TimeZone

/** One signed file of a release: fetched from `url` (relative to the publish root), exactly `length` bytes. */
class FileEntry(val name: String, val url: String, val sha256: String, val length: Long)

class Runtime(val name: String, val minVersion: String)

/** What a device installs (`docs/update-protocol.md` §3, the release object). */
class Release(val model: String, val version: String, val variant: String, val files: List<FileEntry>,
              val minAppVersion: String, val runtime: Runtime, val metadata: Map<String, Any?>,
              /** The release object as signed: stored beside the installed files as `.release.json`. */
              internal val source: Map<*, *> = emptyMap<String, Any?>()) {
    val runtimeName: String get() = runtime.name
    val totalLength: Long get() = files.fold(0L) { acc, f -> acc + f.length }
}

class Rollout(val percent: Double, val salt: String, val halted: Boolean)

/**
 * The channel's capture policy (`docs/update-protocol.md` §3.3): sample [rate] of inferences, at most [maxPerDay] per
 * install and UTC day, and only from a user who consented ([requiresConsent] is always true). Absent: off.
 */
class CapturePolicy(val rate: Double, val maxPerDay: Long, val requiresConsent: Boolean) {
    val on: Boolean get() = rate > 0.0 && maxPerDay > 0
}

/**
 * A channel manifest (`docs/update-protocol.md` §3) whose signature was already verified. [raw] are the signed bytes,
 * never re-serialized. [parse] is the one strict validator, rule for rule and in the same order as
 * `mobile_ml/contracts/manifest.py`, so both clients refuse the same documents for the same field.
 */
class Manifest private constructor(
    val raw: ByteArray, val model: String, val channel: String, val manifestVersion: Long, val issuedAtMillis: Long,
    val expires: String, val expiresMillis: Long, val keyId: String, val action: String, val release: Release,
    val rollout: Rollout, val fallback: Release?, val capture: CapturePolicy? = null
) {
    companion object {
        const val SCHEMA = "mobile_ml.manifest"
        const val RELEASE_SCHEMA = "mobile_ml.release"
        const val MAX_BYTES = 1 shl 20
        const val MAX_SAFE_INT = (1L shl 53) - 1  // every JSON reader holds it exactly
        const val MAX_FILE_BYTES = 1L shl 32  // 4 GiB: a model file larger than this is not for a phone
        const val MAX_FILES = 16
        const val MAX_CAPTURE_PER_DAY = 10_000L  // samples per install and day (mobile_ml/contracts/capture.py)
        private val REQUIRED_FILES = listOf("model.tflite", "metadata.json")

        // The patterns of docs/update-protocol.md §3 (manifest.py names each one the same).
        internal val NAME = Regex("[a-z0-9][a-z0-9._-]{0,63}")
        internal val FILE_NAME = Regex("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  // a file name on the device, never a path
        internal val SHA256 = Regex("[0-9a-f]{64}")
        private val URL = Regex("[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")  // relative, no . or ..
        private val TIME = Regex("([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
        private val SALT = Regex("[\\x21-\\x7e]{1,128}")  // printable ASCII, no spaces: hashed into the bucket
        private val ACTION = Regex("[^\\x00-\\x1f\\x7f]{1,200}")

        fun parse(raw: ByteArray): Manifest {
            val f = Documents.open(raw, SCHEMA, "manifest")
            val model = f.string("model", NAME)
            val release = readRelease(f.obj("release"))
            val fallback = f.objOrNull("fallback")?.let { readRelease(it) }
            for ((key, r) in listOf("release" to release, "fallback" to fallback)) {
                if (r != null && r.model != model) {
                    throw f.error("$key.model", "'${r.model}' is not the manifest's model '$model'")
                }
            }
            val channel = f.string("channel", NAME)
            val version = f.integer("manifest_version", 1, MAX_SAFE_INT)
            val issuedAt = readTime(f, "issued_at")
            val expires = readTime(f, "expires")
            val keyId = f.string("key_id", SHA256, 64)
            val action = f.string("action", ACTION, 200)
            val rollout = readRollout(f.obj("rollout"))
            val capture = if (f.raw.containsKey("capture")) readCapture(f.obj("capture")) else null
            f.done()
            return Manifest(raw, model, channel, version, issuedAt, f.raw["expires"] as String, expires, keyId, action,
                            release, rollout, fallback, capture)
        }

        /** A `mobile_ml.release` document (`versions/<v>/.release.json`), as strictly as a manifest's release. */
        internal fun parseRelease(raw: ByteArray): Release = readRelease(Documents.open(raw, RELEASE_SCHEMA, "release"))

        private fun readFile(f: Fields): FileEntry {
            val e = FileEntry(f.string("name", FILE_NAME, 128), f.string("url", URL, 1024), f.string("sha256", SHA256, 64),
                              f.integer("length", 0, MAX_FILE_BYTES))
            f.done()
            return e
        }

        private fun readRelease(f: Fields): Release {
            val files = f.eachObj("files", MAX_FILES) { readFile(it) }
            val names = files.map { it.name }
            if (names.toSet().size != names.size) throw f.error("files", "two entries have the same name")
            for (required in REQUIRED_FILES) {
                if (required !in names) throw f.error("files", "no $required")
            }
            val model = f.string("model", NAME)
            val version = f.string("version", Semver.PATTERN, 64)
            val variant = f.string("variant", NAME)
            val minApp = f.string("min_app_version", Semver.PATTERN, 64)
            val rt = f.obj("runtime")
            val runtime = Runtime(rt.string("name", NAME), rt.string("min_version", Semver.PATTERN, 64))
            rt.done()
            val parity = f.obj("parity")  // the export's accuracy figures: informational, but still well-formed
            parity.optNumber("accuracy", 0.0, 1.0)
            parity.optNumber("accuracy_drop_pp", -100.0, 100.0)
            parity.optNumber("agreement", 0.0, 1.0)
            parity.done()
            val metadata = f.mapping("metadata")
            f.done()
            return Release(model, version, variant, files, minApp, runtime, metadata, f.raw)
        }

        private fun readRollout(f: Fields): Rollout {
            val r = Rollout(f.number("percent", 0.0, 100.0), f.string("salt", SALT, 128), f.boolean("halted"))
            f.done()
            return r
        }

        private fun readCapture(f: Fields): CapturePolicy {
            val c = CapturePolicy(f.number("rate", 0.0, 1.0), f.integer("max_per_day", 0, MAX_CAPTURE_PER_DAY),
                                  f.boolean("requires_consent"))
            if (!c.requiresConsent) {
                throw f.error("requires_consent", "must be true: raw inputs are sent only with the user's consent")
            }
            f.done()
            return c
        }

        /** A `YYYY-MM-DDTHH:MM:SSZ` field, in milliseconds since the epoch. */
        internal fun readTime(f: Fields, key: String): Long {
            val text = f.string(key, TIME, 20)
            return timeMillis(text) ?: throw f.error(key, "'$text' is not a valid UTC time")
        }

        /** `2026-11-23T10:00:00Z`, the only form mobile-ml writes, in milliseconds since the epoch. */
        fun parseTime(text: String): Long {
            if (!TIME.matches(text)) throw Rejected("malformed", "time '$text' is not YYYY-MM-DDTHH:MM:SSZ")
            return timeMillis(text) ?: throw Rejected("malformed", "time '$text' is not a valid date")
        }

        // Proleptic Gregorian arithmetic, as Python's datetime: SimpleDateFormat switches to Julian before 1582.
        private fun timeMillis(text: String): Long? {
            val g = TIME.matchEntire(text)?.groupValues?.drop(1)?.map { it.toInt() } ?: return null
            val (y, mo, d) = g
            val leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
            val monthDays = intArrayOf(31, if (leap) 29 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
            if (y < 1 || mo !in 1..12 || d !in 1..monthDays[mo - 1] || g[3] > 23 || g[4] > 59 || g[5] > 59) return null
            val yy = (if (mo <= 2) y - 1 else y).toLong()  // days from civil (H. Hinnant), March-based years
            val era = yy / 400
            val yoe = yy - era * 400
            val doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1
            val doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
            val days = era * 146097 + doe - 719468
            return ((days * 24 + g[3]) * 60 + g[4]) * 60000L + g[5] * 1000L
        }

        fun formatTime(millis: Long): String = utcFormat().format(java.util.Date(millis))

        // SimpleDateFormat, not java.time: java.time needs API 26 without desugaring, and minSdk is 24.
        private fun utcFormat(): SimpleDateFormat {
            val f = SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'Z'", Locale.US)
            f.timeZone = TimeZone.getTimeZone("UTC")
            f.isLenient = false
            return f
        }
    }
}

/** Bytes → the fields of one versioned document, schema first (`mobile_ml.contracts.parse_document`). */
internal object Documents {
    fun open(raw: ByteArray, schema: String, what: String): Fields {
        val json = try {
            Json.parse(Json.decodeUtf8(raw))
        } catch (e: Json.ParseError) {
            throw Rejected("malformed", "$what is not valid JSON: ${e.message}")
        }
        val doc = json as? Map<*, *>
        if (doc == null || doc["schema"] != schema) throw Rejected("malformed", "$what is not a $schema document")
        // Python compares with ==, so 1.0 passes here and is refused below as "not an integer", naming the field.
        val version = doc["schema_version"]
        if (version != 1L && version != 1.0) {
            throw Rejected("malformed", "$what has schema_version $version; this updater reads 1")
        }
        val f = Fields(doc, "")
        f.string("schema")
        f.integer("schema_version", 1, 1)
        return f
    }
}
