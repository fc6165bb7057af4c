package dev.mobileml.demo

import android.content.Context
import android.os.Build
import android.util.Log
import dev.mobileml.demo.model.LiteRtHealthCheck
import dev.mobileml.demo.settings.SettingsRepository
import dev.mobileml.demo.update.InferenceTelemetry
import dev.mobileml.demo.update.Monitoring
import dev.mobileml.demo.update.UpdateScheduler
import dev.mobileml.updater.CaptureQueue
import dev.mobileml.updater.Telemetry
import dev.mobileml.updater.UpdateListener
import dev.mobileml.updater.Updater
import dev.mobileml.updater.UpdaterConfig
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import java.io.File

/**
 * The app's object graph, made once, on first use, by [DemoApplication]. An [Updater] is cheap and is made per
 * use from the current settings, so a changed server URL or channel takes effect on the next check.
 */
class AppContainer(context: Context) {
    private val app = context.applicationContext

    /** Outlives screens: telemetry flushes finish even when the activity goes away. */
    val appScope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    val settings = SettingsRepository(app)
    val scheduler = UpdateScheduler(app)
    val inferenceTelemetry = InferenceTelemetry(appScope) { telemetry() }

    /** Downloaded models, staging and the updater's state; excluded from backups (see AndroidManifest.xml). */
    val stateDir = File(app.filesDir, "models")

    /**
     * The user's capture consent and the queue of sampled inputs (capture.json). Beside the updater's state, not in
     * it: the updater owns everything under models/. Uploaded by every update check (with consent and a policy on).
     */
    val capture = CaptureQueue(File(app.filesDir, "capture"))

    /** The per-version counts of every inference (docs/monitoring.md), uploaded by every update check. */
    val monitoring = Monitoring(File(app.filesDir, "aggregates"), BuildConfig.MODEL)

    /** Why updates cannot run in this build, or null when they can. */
    val updatesDisabledReason: String? = keyProblem(BuildConfig.PUBLIC_KEY_B64)

    val updatesEnabled: Boolean get() = updatesDisabledReason == null

    fun config(): UpdaterConfig {
        val s = settings.current
        return UpdaterConfig(
            serverUrl = s.serverUrl,
            model = BuildConfig.MODEL,
            channel = s.channel,
            publicKeyB64 = BuildConfig.PUBLIC_KEY_B64,
            stateDir = stateDir,
            installId = settings.installId,
            appVersion = BuildConfig.VERSION_NAME,
            deviceModel = "${Build.MANUFACTURER} ${Build.MODEL}".take(128),
            sendTelemetry = s.telemetry,
            runtimeVersion = BuildConfig.LITERT_VERSION,
            telemetryToken = BuildConfig.TELEMETRY_TOKEN.ifBlank { null },
        )
    }

    /** An updater for the current settings, or null when updates are disabled (no usable key). */
    fun newUpdater(listener: UpdateListener? = null): Updater? {
        if (!updatesEnabled) return null
        return Updater(config(), LiteRtHealthCheck(), listener, capture)
    }

    /** Telemetry only needs the server and ids, so it works without a key too; null when the user turned it off. */
    private fun telemetry(): Telemetry? =
        if (settings.current.telemetry && configProblem() == null) Telemetry(config()) else null

    /** A malformed mobileml.telemetryToken is a build mistake too: shown in Settings, never a crash. */
    private fun configProblem(): String? = try {
        config()
        null
    } catch (e: IllegalArgumentException) {
        e.message ?: "invalid updater settings"
    }

    private fun keyProblem(key: String): String? {
        if (key.isBlank()) {
            return "No key embedded: updates disabled. Put public.b64 in mobileml.publicKeyB64 " +
                "(android_demo/gradle.properties) and rebuild."
        }
        configProblem()?.let { return "Updater settings rejected ($it): updates disabled." }
        // The updater parses the key in its constructor; a bad key is a build mistake, shown rather than crashing.
        return try {
            Updater(config(), LiteRtHealthCheck())
            null
        } catch (e: Exception) {
            Log.e(TAG, "embedded public key rejected", e)
            "Embedded public key rejected (${e.message}): updates disabled."
        }
    }

    private companion object {
        const val TAG = "AppContainer"
    }
}
