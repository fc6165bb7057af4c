package dev.mobileml.demo

import android.app.Application

/** Holds the app-wide objects; WorkManager uses its default initializer. */
class DemoApplication : Application() {
    private val holder = ContainerHolder { AppContainer(this) }

    /** Made on first use: a worker may need it before [onCreate] (see [ContainerHolder]). */
    val container: AppContainer get() = holder.value

    override fun onCreate() {
        super.onCreate()
        // Re-applied on every start so a changed build (or restored settings) reaches the scheduled work.
        container.scheduler.schedulePeriodic(container.settings.current.conditions, container.updatesEnabled)
    }
}
