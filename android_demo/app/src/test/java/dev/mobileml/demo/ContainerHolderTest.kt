package dev.mobileml.demo

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

/** DemoApplication's container: made on first use from any thread, exactly once, before or after onCreate. */
class ContainerHolderTest {
    private class Container(val serial: Int)

    private val made = AtomicInteger()

    @Test
    fun nothingIsMadeUntilFirstUse() {
        val holder = ContainerHolder { Container(made.incrementAndGet()) }
        assertFalse(holder.isCreated)
        assertEquals(0, made.get())
        val first = holder.value
        assertTrue(holder.isCreated)
        assertSame(first, holder.value)
        assertEquals(1, made.get())
    }

    @Test
    fun aWorkerThatRunsBeforeOnCreateGetsTheContainerOnCreateThenUses() {
        // What WorkManager can do: its initializer runs before Application.onCreate and may start due work at once.
        val holder = ContainerHolder { Container(made.incrementAndGet()) }
        var seenByWorker: Container? = null
        val worker = thread(name = "worker") { seenByWorker = holder.value }
        worker.join(5_000)
        val seenByOnCreate = holder.value  // onCreate, later, on the main thread
        assertSame(seenByWorker, seenByOnCreate)
        assertEquals(1, made.get())
    }

    @Test
    fun threadsThatAskAtOnceShareOneContainer() {
        val inFactory = CountDownLatch(1)
        val holder = ContainerHolder {
            inFactory.countDown()
            Thread.sleep(50)  // a slow creation (disk, key parsing): the others arrive while it runs
            Container(made.incrementAndGet())
        }
        val start = CountDownLatch(1)
        val seen = java.util.Collections.synchronizedList(ArrayList<Container>())
        val threads = (1..8).map { thread { start.await(); seen.add(holder.value) } }
        start.countDown()
        assertTrue(inFactory.await(5, TimeUnit.SECONDS))
        threads.forEach { it.join(5_000) }
        assertEquals(8, seen.size)
        assertEquals(1, made.get())
        assertEquals(1, seen.map { it.serial }.toSet().size)
    }

    @Test
    fun aFailedCreationIsTriedAgainOnNextUse() {
        val holder = ContainerHolder {
            if (made.incrementAndGet() == 1) throw IllegalStateException("disk not ready")
            Container(made.get())
        }
        try {
            holder.value
            fail("the first creation should have thrown")
        } catch (e: IllegalStateException) {
            assertEquals("disk not ready", e.message)
        }
        assertFalse(holder.isCreated)
        assertEquals(2, holder.value.serial)
        assertSame(holder.value, holder.value)
        assertEquals(2, made.get())
    }
}
