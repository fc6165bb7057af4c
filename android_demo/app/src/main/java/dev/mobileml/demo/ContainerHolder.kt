package dev.mobileml.demo

/**
 * Makes the app's container on first use, on whichever thread asks first, and exactly once.
 *
 * Not a `lateinit` set in `Application.onCreate`: WorkManager's initializer runs from a content provider, before
 * `onCreate`, and can start due work at once, so an [dev.mobileml.demo.update.UpdateWorker] may ask for the
 * container before `onCreate` has run. A failed creation is not remembered: the next use tries again.
 * Plain Kotlin, so updater/test.sh tests it on the JVM (ContainerHolderTest).
 */
class ContainerHolder<T : Any>(create: () -> T) {
    private val lazyValue = lazy(LazyThreadSafetyMode.SYNCHRONIZED, create)

    val value: T get() = lazyValue.value

    val isCreated: Boolean get() = lazyValue.isInitialized()
}
