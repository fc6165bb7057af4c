package dev.mobileml.demo.update

import android.content.Context
import android.os.SystemClock
import android.util.Log
import androidx.work.CoroutineWorker
import androidx.work.WorkerParameters
import androidx.work.workDataOf
import dev.mobileml.demo.DemoApplication
import dev.mobileml.updater.Outcome
import dev.mobileml.updater.SyncResult
import dev.mobileml.updater.UpdateListener
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext

/**
 * One update check: [dev.mobileml.updater.Updater.sync] (verify, download, health-check, switch) off the main
 * thread. The updater sends its own update_* telemetry; this also flushes the batched inference events.
 * The ViewModel reloads the model once no check runs (UpdateWatch). The container may be made here, on first use:
 * WorkManager can run this before DemoApplication.onCreate (ContainerHolder).
 */
class UpdateWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {

    override suspend fun doWork(): Result {
        val container = (applicationContext as DemoApplication).container
        val result = try {
            val updater = container.newUpdater(ProgressReporter())
                ?: return Result.failure(workDataOf(KEY_OUTCOME to "disabled", KEY_DETAIL to container.updatesDisabledReason))
            // The periodic and the one-off check may both be due: one sync at a time per process.
            withContext(Dispatchers.IO) { syncLock.withLock { updater.sync() } }
        } catch (e: CancellationException) {
            throw e  // WorkManager stopped the work (constraints lost); the updater resumes next time
        } catch (e: Exception) {
            // sync() reports network, server and content problems as results; anything thrown is a bug.
            Log.e(TAG, "update check crashed", e)
            return Result.failure(workDataOf(KEY_OUTCOME to Outcome.FAILED.wire, KEY_REASON to "crash",
                                             KEY_DETAIL to "${e.javaClass.simpleName}: ${e.message}"))
        }
        Log.i(TAG, result.toString())
        // The network is up right now: a good moment to send what the app batched.
        container.inferenceTelemetry.flush(force = true)
        // The counts since the last upload; kept on the device for the next check unless the server stored them.
        withContext(Dispatchers.IO) {
            for (r in container.monitoring.upload(container.config())) Log.i(TAG, "aggregates ${r.outcome.wire} ${r.detail}")
        }

        val output = workDataOf(KEY_OUTCOME to result.outcome.wire, KEY_REASON to result.reason,
                                KEY_DETAIL to result.detail, KEY_CURRENT to result.current)
        return when (result.outcome) {
            Outcome.INSTALLED, Outcome.UP_TO_DATE, Outcome.NOT_MODIFIED, Outcome.SKIPPED -> Result.success(output)
            // Fetching the same signed files again changes nothing; the next period looks again.
            Outcome.REJECTED -> Result.failure(output)
            Outcome.FAILED ->
                if (isTransient(result) && runAttemptCount + 1 < MAX_ATTEMPTS) Result.retry() else Result.failure(output)
        }
    }

    /** Worth retrying soon (with the request's exponential backoff): the server or the network was unavailable. */
    private fun isTransient(result: SyncResult): Boolean {
        val reason = result.reason ?: return false
        return reason == "network" || reason == "interrupted" || reason == "http_429" || reason.startsWith("http_5")
    }

    /** Download progress for the UI (WorkInfo.progress), at most a few times a second. */
    private inner class ProgressReporter : UpdateListener {
        private var lastReport = 0L

        override fun onProgress(file: String, bytes: Long, total: Long) {
            val now = SystemClock.elapsedRealtime()
            if (bytes < total && now - lastReport < PROGRESS_INTERVAL_MS) return
            lastReport = now
            setProgressAsync(workDataOf(KEY_FILE to file, KEY_BYTES to bytes, KEY_TOTAL to total))
        }
    }

    companion object {
        const val KEY_OUTCOME = "outcome"
        const val KEY_REASON = "reason"
        const val KEY_DETAIL = "detail"
        const val KEY_CURRENT = "current"
        const val KEY_FILE = "file"
        const val KEY_BYTES = "bytes"
        const val KEY_TOTAL = "total"

        private const val TAG = "UpdateWorker"
        private const val MAX_ATTEMPTS = 4
        private const val PROGRESS_INTERVAL_MS = 250L
        private val syncLock = Mutex()
    }
}
