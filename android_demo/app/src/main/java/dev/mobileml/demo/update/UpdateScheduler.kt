package dev.mobileml.demo.update

import android.content.Context
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkInfo
import androidx.work.WorkManager
import dev.mobileml.demo.settings.DownloadConditions
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.combine
import java.util.concurrent.TimeUnit

/** Schedules [UpdateWorker]: a periodic check under the download conditions, and a one-off "check now". */
class UpdateScheduler(context: Context) {
    private val workManager = WorkManager.getInstance(context)

    /**
     * (Re)schedules the periodic check with [conditions]. UPDATE keeps the current period's schedule and only
     * swaps the constraints, so calling this on every start or settings change does not postpone checks.
     */
    fun schedulePeriodic(conditions: DownloadConditions, enabled: Boolean) {
        if (!enabled) {
            workManager.cancelUniqueWork(PERIODIC)
            return
        }
        val request = PeriodicWorkRequestBuilder<UpdateWorker>(PERIOD_HOURS, TimeUnit.HOURS)
            .setConstraints(constraints(conditions))
            .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, BACKOFF_MINUTES, TimeUnit.MINUTES)
            .build()
        workManager.enqueueUniquePeriodicWork(PERIODIC, ExistingPeriodicWorkPolicy.UPDATE, request)
    }

    /**
     * One check as soon as there is any network: the user asked, so the Wi-Fi / battery / charging / idle
     * conditions do not apply. KEEP: pressing again while one is pending does not queue another.
     */
    fun checkNow() {
        val request = OneTimeWorkRequestBuilder<UpdateWorker>()
            .setConstraints(Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build())
            .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, BACKOFF_MINUTES, TimeUnit.MINUTES)
            .build()
        workManager.enqueueUniqueWork(CHECK_NOW, ExistingWorkPolicy.KEEP, request)
    }

    /** The periodic and the one-off check's WorkInfo (each null until first scheduled). */
    fun work(): Flow<Pair<WorkInfo?, WorkInfo?>> =
        combine(workManager.getWorkInfosForUniqueWorkFlow(PERIODIC),
                workManager.getWorkInfosForUniqueWorkFlow(CHECK_NOW)) { periodic, now ->
            periodic.firstOrNull() to now.firstOrNull()
        }

    companion object {
        const val PERIODIC = "model-update-periodic"
        const val CHECK_NOW = "model-update-now"
        const val PERIOD_HOURS = 6L
        const val BACKOFF_MINUTES = 15L

        fun constraints(c: DownloadConditions): Constraints = Constraints.Builder()
            .setRequiredNetworkType(if (c.unmeteredOnly) NetworkType.UNMETERED else NetworkType.CONNECTED)
            .setRequiresBatteryNotLow(c.batteryNotLow)
            .setRequiresCharging(c.charging)
            // API 23+, always true here (minSdk 24). Some devices rarely report idle while charging.
            .setRequiresDeviceIdle(c.idle)
            .build()
    }
}
