package dev.mobileml.updater

import java.io.File

/** Everything the updater needs to know about this app and device. */
class UpdaterConfig(
    /** Base URL of the publish root, e.g. `http://10.0.2.2:8000/` (the emulator's view of the host). */
    val serverUrl: String,
    val model: String,
    val channel: String,
    /** `public.b64` from `mobile-ml keys generate`: base64 SubjectPublicKeyInfo DER, pinned in the app. */
    val publicKeyB64: String,
    /** Where versions, staging and state live; app: `File(context.filesDir, "models")`. */
    val stateDir: File,
    /** A random id the app creates once; only its sha256 leaves the device (telemetry), rollout buckets use it. */
    val installId: String,
    /** This app's version (semver), compared with a release's `min_app_version`. */
    val appVersion: String,
    val deviceModel: String = "jvm",
    val timeoutMillis: Int = 10000,
    val sendTelemetry: Boolean = true,
    /** One check ends by then, whatever the server does; a partial download is kept for the next check. */
    val checkDeadlineMillis: Long = 10 * 60 * 1000L,
    /** A transfer slower than this over a whole [rateWindowMillis] is abandoned (and resumed next check). */
    val minBytesPerSecond: Long = 1024,
    val rateWindowMillis: Long = 30 * 1000L,
    /**
     * The LiteRT version the app ships (its Gradle dependency), checked against a release's `runtime.min_version`;
     * null: no LiteRT, every release is skipped (`runtime`). A suffix after MAJOR.MINOR.PATCH (`2.0.0-alpha`,
     * `1.4.0.rc1`) sorts just before that version.
     */
    val runtimeVersion: String? = LITERT_VERSION,
    /** Sent as `Authorization: Bearer <token>` with telemetry (`mobile-ml serve --telemetry-token`); null: none. */
    val telemetryToken: String? = null,
    val clock: () -> Long = { System.currentTimeMillis() }
) {
    init {
        require(telemetryToken == null || TOKEN.matches(telemetryToken)) {
            "telemetryToken must be 16-256 characters of A-Z a-z 0-9 . _ ~ + / - (then optional '=')"
        }
        require(Semver.isValid(appVersion)) { "appVersion '$appVersion' is not a semantic version" }
        require(installId.isNotEmpty()) { "installId is empty" }
        require(checkDeadlineMillis > 0 && minBytesPerSecond >= 0 && rateWindowMillis > 0) { "bad check limits" }
    }

    /** The server URL with exactly one trailing slash: file URLs in a manifest are relative to it. */
    val baseUrl: String get() = if (serverUrl.endsWith("/")) serverUrl else "$serverUrl/"

    companion object {
        /** The LiteRT the demo app depends on (`litert` in android_demo/gradle/libs.versions.toml; a test checks). */
        const val LITERT_VERSION = "1.4.1"
        private val TOKEN = Regex("[A-Za-z0-9._~+/-]{16,256}=*")  // RFC 6750 b64token, as the server checks it
    }
}

class HealthResult(val ok: Boolean, val detail: String)

/**
 * Runs a freshly downloaded model on the known input in its metadata before the switch (§5 step 8). The app
 * implements it with LiteRT; [HealthCases] holds the comparison so every implementation judges alike.
 */
interface HealthCheck {
    fun check(model: File, metadata: Map<String, Any?>): HealthResult
}

/** Sees download progress; throwing from it aborts the check like a dropped connection (the partial file stays). */
interface UpdateListener {
    /** A file's transfer begins at [offset]: 0, or where a cut download resumes (the server answered 206). */
    fun onStart(file: String, offset: Long, total: Long) {}

    fun onProgress(file: String, bytes: Long, total: Long)
}

enum class Outcome(val wire: String) {
    INSTALLED("installed"), UP_TO_DATE("up_to_date"), NOT_MODIFIED("not_modified"), SKIPPED("skipped"),
    REJECTED("rejected"), FAILED("failed")
}

/** What a check found damaged on the device and mended; reported beside the outcome, never instead of it. */
enum class Repair(val wire: String) {
    STATE_REBUILT("state_rebuilt"),  // state.json unreadable or missing: rebuilt from state.backup.json
    MODEL_REINSTALLED("model_reinstalled")  // current.json, versions/<v>/ or one of its files damaged: downloaded again
}

/**
 * What one check did. [reason] is a protocol reason code (`hash_mismatch`, `rollback`, ...) or one of `network`,
 * `http_<status>`, `interrupted`, `health_check`, `app_too_old`, `runtime`, `no_space`, `io`, `state_unreadable`.
 * [current] is the downloaded version the app runs, null when none is whole (the app then runs its bundled model).
 */
class SyncResult(val outcome: Outcome, val current: String?, val previous: String?, val reason: String?,
                 val detail: String, val manifestVersion: Long?, val repairs: List<Repair> = emptyList()) {
    override fun toString(): String = "SyncResult(${outcome.wire}, current=$current, previous=$previous, " +
        "reason=$reason, repairs=${repairs.map { it.wire }}, detail=$detail)"
}

class InstalledModel(val version: String, val dir: File, val modelFile: File, val metadata: Map<String, Any?>)

class LastCheck(val time: String, val outcome: String, val reason: String?)

/** A failure that is a result, not a bug: the check stops, the current model stays. */
internal class UpdateFailed(val reason: String, val detail: String) : Exception("$reason: $detail")
