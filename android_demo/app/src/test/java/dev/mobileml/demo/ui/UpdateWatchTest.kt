package dev.mobileml.demo.ui

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** When the ViewModel re-reads the model after update checks, and what Settings shows meanwhile. */
class UpdateWatchTest {
    private val enqueued = WorkObservation(running = false, finished = false)
    private fun running(progress: String? = null) = WorkObservation(running = true, finished = false, progress = progress)
    private fun succeeded(result: String) = WorkObservation(running = false, finished = true, result = result)

    /** Feeds observations in order, as the work flow emits them; returns the reload decision of each. */
    private fun reloads(vararg observations: Pair<WorkObservation?, WorkObservation?>): List<Boolean> =
        observations.map { (periodic, now) -> UpdateWatch.view(periodic, now).reload }

    @Test
    fun aFastCheckNowThatIsNeverSeenRunningStillReloads() {
        // A 304 from localhost: ENQUEUED, then SUCCEEDED, with no RUNNING observation in between.
        assertEquals(listOf(true, true), reloads(enqueued to null, enqueued to succeeded("not modified")))
        assertEquals("not modified", UpdateWatch.view(enqueued, succeeded("not modified")).result)
    }

    @Test
    fun aPeriodicRunReloadsWhenItIsBackToEnqueued() {
        // A periodic work never finishes: RUNNING, then ENQUEUED for the next period.
        assertEquals(listOf(true, false, true), reloads(enqueued to null, running() to null, enqueued to null))
    }

    @Test
    fun nothingIsReloadedWhileAnyCheckRuns() {
        val view = UpdateWatch.view(running("model.tflite 12 / 28 KB"), succeeded("installed 1.0.1"))
        assertFalse(view.reload)
        assertTrue(view.checking)
        assertEquals("model.tflite 12 / 28 KB", view.progress)
        assertEquals("installed 1.0.1", view.result)  // the finished one-off's outcome is shown already
        assertFalse(UpdateWatch.view(enqueued, running()).reload)
    }

    @Test
    fun noScheduledWorkMeansNothingRunsAndTheModelIsRead() {
        val view = UpdateWatch.view(null, null)
        assertEquals(WorkView(checking = false, progress = null, result = null, reload = true), view)
    }

    @Test
    fun onlyAFinishedCheckNowGivesAResult() {
        val pendingNow = WorkObservation(running = false, finished = false, result = "stale output")
        assertNull(UpdateWatch.view(enqueued, pendingNow).result)
        // The periodic work's output is never shown as "Last check now".
        assertNull(UpdateWatch.view(succeeded("periodic output"), null).result)
        assertNull(UpdateWatch.view(enqueued, enqueued).progress)
    }
}
