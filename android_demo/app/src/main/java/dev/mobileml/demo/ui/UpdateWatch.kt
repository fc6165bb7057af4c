package dev.mobileml.demo.ui

/** One update work as the ViewModel saw it in one WorkInfo: only what the rule below needs, in words. */
class WorkObservation(
    val running: Boolean,
    /** SUCCEEDED, FAILED or CANCELLED. A periodic work never gets there: after a run it is ENQUEUED again. */
    val finished: Boolean,
    /** "model.tflite 12 / 28 KB" while downloading. */
    val progress: String? = null,
    /** The run's outcome in words, from its output data. */
    val result: String? = null
)

/** What one observation of both update works means for the screen. */
data class WorkView(val checking: Boolean, val progress: String?, val result: String?, val reload: Boolean)

/**
 * Turns the periodic and the one-off check's latest WorkInfo into screen state and the reload decision.
 * Plain Kotlin (no WorkManager types), so updater/test.sh tests it on the JVM (UpdateWatchTest).
 */
object UpdateWatch {
    /**
     * [periodic] and [now] are null until first scheduled. The model and the last-check record are re-read
     * whenever no work is running, not only after a RUNNING state was seen: a fast check (a 304 from localhost)
     * can go from ENQUEUED straight to SUCCEEDED, and a periodic run from ENQUEUED back to ENQUEUED, between two
     * observations. Reloading is cheap: it reads current.json and swaps the interpreter only on a new version.
     */
    fun view(periodic: WorkObservation?, now: WorkObservation?): WorkView {
        val running = listOfNotNull(periodic, now).firstOrNull { it.running }
        return WorkView(checking = running != null, progress = running?.progress,
                        result = now?.takeIf { it.finished }?.result, reload = running == null)
    }
}
