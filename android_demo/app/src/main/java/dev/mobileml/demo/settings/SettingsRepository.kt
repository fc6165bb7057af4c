package dev.mobileml.demo.settings

import android.content.Context
import androidx.core.content.edit
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import java.util.UUID

/** Settings persisted in SharedPreferences, observable as a StateFlow; the install id is made once. */
class SettingsRepository(context: Context) {
    private val prefs = context.getSharedPreferences(FILE, Context.MODE_PRIVATE)
    private val state = MutableStateFlow(read())

    val settings: StateFlow<Settings> = state.asStateFlow()
    val current: Settings get() = state.value

    /**
     * A random id for this installation: rollout buckets and (hashed) telemetry use it. Never derived from the
     * device, never backed up (res/xml/data_extraction_rules.xml), so a reinstall is a new device.
     */
    val installId: String
        @Synchronized get() = prefs.getString(KEY_INSTALL_ID, null) ?: UUID.randomUUID().toString().also {
            prefs.edit(commit = true) { putString(KEY_INSTALL_ID, it) }
        }

    @Synchronized
    fun update(change: (Settings) -> Settings) {
        val next = change(state.value)
        prefs.edit {
            if (next.serverUrlOverride == null) remove(KEY_SERVER_URL) else putString(KEY_SERVER_URL, next.serverUrlOverride)
            if (next.channelOverride == null) remove(KEY_CHANNEL) else putString(KEY_CHANNEL, next.channelOverride)
            putBoolean(KEY_UNMETERED, next.conditions.unmeteredOnly)
            putBoolean(KEY_BATTERY_NOT_LOW, next.conditions.batteryNotLow)
            putBoolean(KEY_CHARGING, next.conditions.charging)
            putBoolean(KEY_IDLE, next.conditions.idle)
            putBoolean(KEY_TELEMETRY, next.telemetry)
            putBoolean(KEY_FIT, next.fitDrawing)
        }
        state.value = next
    }

    private fun read(): Settings {
        val defaults = Settings()
        val c = defaults.conditions
        return Settings(
            serverUrlOverride = prefs.getString(KEY_SERVER_URL, null),
            channelOverride = prefs.getString(KEY_CHANNEL, null),
            conditions = DownloadConditions(
                unmeteredOnly = prefs.getBoolean(KEY_UNMETERED, c.unmeteredOnly),
                batteryNotLow = prefs.getBoolean(KEY_BATTERY_NOT_LOW, c.batteryNotLow),
                charging = prefs.getBoolean(KEY_CHARGING, c.charging),
                idle = prefs.getBoolean(KEY_IDLE, c.idle),
            ),
            telemetry = prefs.getBoolean(KEY_TELEMETRY, defaults.telemetry),
            fitDrawing = prefs.getBoolean(KEY_FIT, defaults.fitDrawing),
        )
    }

    private companion object {
        const val FILE = "mobileml_settings"  // also named in res/xml/data_extraction_rules.xml
        const val KEY_INSTALL_ID = "install_id"
        const val KEY_SERVER_URL = "server_url"
        const val KEY_CHANNEL = "channel"
        const val KEY_UNMETERED = "unmetered_only"
        const val KEY_BATTERY_NOT_LOW = "battery_not_low"
        const val KEY_CHARGING = "charging"
        const val KEY_IDLE = "idle"
        const val KEY_TELEMETRY = "telemetry"
        const val KEY_FIT = "fit_drawing"
    }
}
