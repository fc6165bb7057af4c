package dev.mobileml.demo.settings

import dev.mobileml.demo.BuildConfig

/**
 * When the periodic check may download, after Firebase ML's download conditions: Wi-Fi (unmetered) only and
 * battery not low by default; charging and idle are stricter, optional. "Check now" ignores them all but needs
 * a network.
 */
data class DownloadConditions(
    val unmeteredOnly: Boolean = true,
    val batteryNotLow: Boolean = true,
    val charging: Boolean = false,
    val idle: Boolean = false,
)

/** What the user can change at run time; the defaults come from gradle.properties via BuildConfig. */
data class Settings(
    /** Null: BuildConfig.SERVER_URL (so a rebuild with another mobileml.serverUrl takes effect). */
    val serverUrlOverride: String? = null,
    /** Null: BuildConfig.CHANNEL. */
    val channelOverride: String? = null,
    val conditions: DownloadConditions = DownloadConditions(),
    /** Inference latency and update events to the server's /v1/telemetry (only a hash of the install id). */
    val telemetry: Boolean = true,
    /** Scale and centre the drawing like the training digits before downsampling (Preprocess.fitWindow). */
    val fitDrawing: Boolean = true,
) {
    val serverUrl: String get() = serverUrlOverride ?: BuildConfig.SERVER_URL
    val channel: String get() = channelOverride ?: BuildConfig.CHANNEL

    companion object {
        /** Model and channel names in the update protocol (docs/update-protocol.md §2). */
        private val CHANNEL_NAME = Regex("[a-z0-9][a-z0-9._-]{0,63}")

        /** Null when [channel] is a valid channel name, else what is wrong with it. */
        fun channelProblem(channel: String): String? =
            if (CHANNEL_NAME.matches(channel)) null
            else "A channel is 1-64 characters: a-z, 0-9, '.', '_', '-' (starting with a letter or digit)."

        /** Null when [url] can be a publish root's base URL, else what is wrong with it. */
        fun serverUrlProblem(url: String): String? {
            val uri = try {
                java.net.URI(url)
            } catch (e: java.net.URISyntaxException) {
                return "Not a URL: ${e.reason}."
            }
            if (uri.scheme != "https" && uri.scheme != "http") return "The URL must start with https:// (or http://)."
            if (uri.host.isNullOrEmpty()) return "The URL has no host."
            return null
        }

        /** Debug builds allow cleartext HTTP to these hosts only (res/xml/network_security_config.xml). */
        val CLEARTEXT_HOSTS = setOf("10.0.2.2", "localhost", "127.0.0.1")
    }
}
