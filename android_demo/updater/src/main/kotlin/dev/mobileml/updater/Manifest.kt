package dev.mobileml.updater

import java.text.ParseException
import java.text.SimpleDateFormat
import java.util.Locale
import java.util.TimeZone

/** One signed file of a release: fetched from `url` (relative to the publish root), exactly `length` bytes. */
class FileEntry(val name: String, val url: String, val sha256: String, val length: Long)

class Release(val version: String, val variant: String?, val files: List<FileEntry>, val minAppVersion: String,
              val runtimeName: String, val json: Map<String, Any?>) {
    val totalLength: Long get() = files.fold(0L) { acc, f -> acc + f.length }
}

class Rollout(val percent: Double, val salt: String, val halted: Boolean)

/**
 * A channel manifest (`docs/update-protocol.md` §3) whose signature was already verified. [raw] are the signed bytes,
 * never re-serialized. Parsing checks the shape the protocol promises; anything else is `malformed`.
 */
class Manifest private constructor(val raw: ByteArray, val json: Map<String, Any?>) {
    val model: String get() = json["model"] as String
    val channel: String get() = json["channel"] as String
    val keyId: String get() = json["key_id"] as String
    val manifestVersion: Long get() = json["manifest_version"] as Long
    val expires: String get() = json["expires"] as String
    val release: Release = parseRelease(json["release"]) ?: throw Rejected("malformed", "release is missing")
    val fallback: Release? = parseRelease(json["fallback"])
    val rollout: Rollout = parseRollout(json["rollout"])

    companion object {
        const val SCHEMA = "mobile_ml.manifest"
        const val MAX_BYTES = 1 shl 20
        private val NAME = Regex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
        private val HEX64 = Regex("^[0-9a-f]{64}$")

        fun parse(raw: ByteArray): Manifest {
            val json = try {
                Json.parseObject(raw)
            } catch (e: Json.ParseError) {
                throw Rejected("malformed", "not valid JSON: ${e.message}")
            }
            if (json["schema"] != SCHEMA) throw Rejected("malformed", "not a mobile-ml manifest")
            if (json["schema_version"] != 1L) {
                throw Rejected("malformed", "schema_version ${json["schema_version"]}; this updater reads 1")
            }
            for (key in listOf("model", "channel", "key_id", "issued_at", "expires")) {
                if (json[key] !is String) throw Rejected("malformed", "'$key' is missing or not a string")
            }
            if (json["manifest_version"] !is Long) throw Rejected("malformed", "manifest_version is not an integer")
            parseTime(json["issued_at"] as String)
            parseTime(json["expires"] as String)
            return Manifest(raw, json)
        }

        /** `2026-11-23T10:00:00Z`, the only form mobile-ml writes, in milliseconds since the epoch. */
        fun parseTime(text: String): Long {
            if (!Regex("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$").matches(text)) {
                throw Rejected("malformed", "time '$text' is not YYYY-MM-DDTHH:MM:SSZ")
            }
            try {
                return utcFormat().parse(text).time
            } catch (e: ParseException) {
                throw Rejected("malformed", "time '$text' is not a valid date")
            }
        }

        fun formatTime(millis: Long): String = utcFormat().format(java.util.Date(millis))

        // SimpleDateFormat, not java.time: java.time needs API 26 without desugaring, and minSdk is 24.
        private fun utcFormat(): SimpleDateFormat {
            val f = SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'Z'", Locale.US)
            f.timeZone = TimeZone.getTimeZone("UTC")
            f.isLenient = false
            return f
        }

        private fun parseRelease(value: Any?): Release? {
            if (value == null) return null
            val r = value as? Map<*, *> ?: throw Rejected("malformed", "a release is not an object")
            val version = r["version"] as? String ?: throw Rejected("malformed", "release has no version")
            if (!Semver.isValid(version)) throw Rejected("malformed", "release version '$version' is not semver")
            val files = (r["files"] as? List<*> ?: throw Rejected("malformed", "release has no files")).map { f ->
                val e = f as? Map<*, *> ?: throw Rejected("malformed", "a file entry is not an object")
                val name = e["name"] as? String
                val url = e["url"] as? String
                val sha = e["sha256"] as? String
                val length = e["length"] as? Long
                // Names and hashes become file names on the device: only plain names and 64-hex hashes.
                if (name == null || !NAME.matches(name) || url == null || url.isEmpty() || sha == null ||
                    !HEX64.matches(sha) || length == null || length < 0) {
                    throw Rejected("malformed", "file entry $e is incomplete")
                }
                FileEntry(name, url, sha, length)
            }
            val minApp = r["min_app_version"] as? String ?: "0.0.0"
            if (!Semver.isValid(minApp)) throw Rejected("malformed", "min_app_version '$minApp' is not semver")
            val runtime = (r["runtime"] as? Map<*, *>)?.get("name") as? String ?: "litert"
            @Suppress("UNCHECKED_CAST")
            return Release(version, r["variant"] as? String, files, minApp, runtime, r as Map<String, Any?>)
        }

        private fun parseRollout(value: Any?): Rollout {
            val r = value as? Map<*, *> ?: throw Rejected("malformed", "rollout is missing")
            val percent = (r["percent"] as? Number)?.toDouble() ?: throw Rejected("malformed", "rollout has no percent")
            val salt = r["salt"] as? String ?: throw Rejected("malformed", "rollout has no salt")
            return Rollout(percent, salt, r["halted"] == true)
        }
    }
}
