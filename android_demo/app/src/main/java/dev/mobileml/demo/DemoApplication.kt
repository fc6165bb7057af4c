package dev.mobileml.demo

import android.app.Application

/** Holds the app-wide objects; WorkManager uses its default initializer. */
class DemoApplication : Application() {
    lateinit var container: AppContainer
        private set

    override fun onCreate() {
        super.onCreate()
        container = AppContainer(this)
        // Re-applied on every start so a changed build (or restored settings) reaches the scheduled work.
        container.scheduler.schedulePeriodic(container.settings.current.conditions, container.updatesEnabled)
    }
}
