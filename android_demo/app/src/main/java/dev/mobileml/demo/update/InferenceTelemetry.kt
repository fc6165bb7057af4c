package dev.mobileml.demo.update

import android.os.SystemClock
import dev.mobileml.updater.Telemetry
import dev.mobileml.updater.TelemetryEvent
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * On-device inference latency, batched in memory and sent to the server's /v1/telemetry off the main thread:
 * every [FLUSH_EVERY] inferences, and after each update check. Best effort, like the updater's own telemetry:
 * at most [MAX_PENDING] events wait (the server's per-request limit), the oldest go first, and events still
 * waiting when the process dies are lost.
 */
class InferenceTelemetry(private val scope: CoroutineScope, private val telemetry: () -> Telemetry?) {
    private val pending = ArrayDeque<TelemetryEvent>()
    private var retryAfter = 0L  // elapsedRealtime; after a failed send, inference-triggered flushes wait

    fun record(version: String, latencyMs: Double) {
        val due = synchronized(pending) {
            if (pending.size >= MAX_PENDING) pending.removeFirst()
            pending.addLast(TelemetryEvent("inference", version, latencyMs))
            pending.size >= FLUSH_EVERY && SystemClock.elapsedRealtime() >= retryAfter
        }
        if (due) scope.launch { flush() }
    }

    /** Sends what is waiting; [force] ignores the pause after a failure (the update worker just reached the server). */
    suspend fun flush(force: Boolean = false): Unit = withContext(Dispatchers.IO) {
        val sender = telemetry()
        val batch = synchronized(pending) {
            if (!force && SystemClock.elapsedRealtime() < retryAfter) return@withContext
            val events = pending.toList()
            pending.clear()
            events
        }
        // Turned off in settings: what was recorded is dropped, not kept for later.
        if (batch.isEmpty() || sender == null) return@withContext
        if (!sender.send(batch)) {
            synchronized(pending) {
                retryAfter = SystemClock.elapsedRealtime() + RETRY_PAUSE_MS
                batch.asReversed().forEach { if (pending.size < MAX_PENDING) pending.addFirst(it) }
            }
        }
    }

    private companion object {
        const val FLUSH_EVERY = 20
        const val MAX_PENDING = 100  // the server accepts at most 100 events per request
        const val RETRY_PAUSE_MS = 60_000L
    }
}
