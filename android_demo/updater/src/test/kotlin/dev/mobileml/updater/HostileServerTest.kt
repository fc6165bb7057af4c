package dev.mobileml.updater

import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import dev.mobileml.updater.LoopbackServer.Mode
import org.junit.Test
import java.io.File
import java.security.KeyPairGenerator
import java.security.spec.ECGenParameterSpec
import java.util.Random

/**
 * The updater against a hostile server on loopback (issue 12: slow retrieval, endless data, bad telemetry replies)
 * and a damaged device (corrupt state.json). The channel is signed here with a key made for the test, so every
 * attack is on transport or storage, never on the signature.
 */
class HostileServerTest {
    private val keyPair = KeyPairGenerator.getInstance("EC").also { it.initialize(ECGenParameterSpec("secp256r1")) }
        .generateKeyPair()
    private val tmp = java.nio.file.Files.createTempDirectory("updater-hostile").toFile()
    private val state = File(tmp, "device")
    private val model = ByteArray(64 * 1024).also { Random(7).nextBytes(it) }
    private val metadata = "{}".toByteArray()
    private val server = LoopbackServer(keyPair, model, metadata)
    private val fastBytes = server.fastBytes

    @After
    fun stop() {
        server.close()
        tmp.deleteRecursively()
    }

    private fun updater(deadlineMillis: Long = 60000, minRate: Long = 0, windowMillis: Long = 500,
                        telemetry: Boolean = false): Updater {
        val config = UpdaterConfig(server.url, "digits", "stable", Keys.toBase64(keyPair.public), state, "device-1",
                                   "1.0.0", timeoutMillis = 5000, sendTelemetry = telemetry, checkDeadlineMillis = deadlineMillis,
                                   minBytesPerSecond = minRate, rateWindowMillis = windowMillis)
        return Updater(config, object : HealthCheck {
            override fun check(model: File, metadata: Map<String, Any?>) = HealthResult(true, "ok")
        })
    }

    @Test(timeout = 30000)
    fun aDrippedManifestEndsAtTheCheckDeadline() {
        server.manifestMode = Mode.DRIP
        val started = System.currentTimeMillis()
        val r = updater(deadlineMillis = 1500).sync()
        val took = System.currentTimeMillis() - started
        assertEquals(Outcome.FAILED, r.outcome)
        assertEquals("network", r.reason)
        assertTrue("the check took $took ms", took < 1500 + 5000)
    }

    @Test(timeout = 30000)
    fun aSilentServerIsCutAtTheDeadlineNotAtTheSocketTimeout() {
        server.manifestMode = Mode.STALL  // headers and a few bytes, then nothing: the socket timeout (5 s) is not the limit
        val started = System.currentTimeMillis()
        val r = updater(deadlineMillis = 1000).sync()
        val took = System.currentTimeMillis() - started
        assertEquals(r.toString(), "network", r.reason)
        assertTrue("the check took $took ms", took < 1000 + 2500)
    }

    @Test(timeout = 30000)
    fun aBlobBelowTheMinimumRateIsCutAndResumedByTheNextCheck() {
        server.blobMode = Mode.DRIP
        val r = updater(minRate = 2000, windowMillis = 500).sync()
        assertEquals(r.toString(), "network", r.reason)
        val part = File(state, "staging/${Codec.sha256Hex(model)}.part")
        val kept = part.length()
        assertTrue("the partial download is kept: $kept bytes", kept >= fastBytes && kept < model.size)
        server.blobMode = Mode.NORMAL
        val again = updater(minRate = 2000, windowMillis = 500).sync()
        assertEquals(again.toString(), Outcome.INSTALLED, again.outcome)
        assertTrue(server.requests.toString(), server.requests.any { it == "GET blob bytes=$kept-" })
        assertArrayEquals(model, File(state, "versions/1.0.0/model.tflite").readBytes())
    }

    @Test(timeout = 30000)
    fun anEndlessTelemetryReplyIsReadOnlyUpToItsCap() {
        server.telemetryEndless = true
        val r = updater(telemetry = true).sync()
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertTrue(server.requests.toString(), server.requests.contains("POST telemetry"))
    }

    @Test(timeout = 60000)
    fun aBadTelemetryReplyNeverFailsTheCheck() {
        // cut short, a garbled status line, no HTTP at all, broken chunking, a bad length, an error, nothing
        val replies = listOf("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", "HTTP/1.1 abc\r\n\r\n",
                             "garbage\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                             "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "HTTP/1.1 500 Boom\r\nContent-Length: 5\r\n\r\n", "")
        for (reply in replies) {
            server.telemetryReply = reply
            state.deleteRecursively()
            val r = updater(telemetry = true).sync()
            assertEquals("reply '$reply': $r", Outcome.INSTALLED, r.outcome)
        }
        server.telemetryDrip = true  // a reply dripped past the deadline: cut, and still not the check's failure
        state.deleteRecursively()
        val started = System.currentTimeMillis()
        val r = updater(deadlineMillis = 2000, telemetry = true).sync()
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertTrue(System.currentTimeMillis() - started < 2000 + 5000)
    }

    @Test(timeout = 60000)
    fun anUnreadableStateFailsClosedAndStaysForALook() {
        val good = "{\"channels\":{\"digits/stable\":{\"manifest_version\":9,\"manifest_sha256\":\"${"a".repeat(64)}\"," +
            "\"manifest_etag\":null,\"current\":\"2.0.0\"}},\"current\":\"2.0.0\",\"previous\":null}"
        val damaged = listOf("", "{", "[]", "\"x\"", "null", good.dropLast(9), "{\"channels\":[]}",
                             good.replace("\"manifest_version\":9", "\"manifest_version\":\"9\""),
                             good.replace("\"current\":\"2.0.0\"}}", "\"current\":\"2.0.0\",\"x\":1}}"),
                             "{\"trusted_key_b64\":7}", "{\"last_check\":[]}")
        for (text in damaged) {
            state.deleteRecursively()
            state.mkdirs()
            File(state, "state.json").writeText(text)
            val r = updater().sync()
            assertEquals("state '$text': $r", Outcome.FAILED, r.outcome)
            assertEquals("state '$text'", "state_unreadable", r.reason)
            assertEquals("the damaged state is left as it was", text, File(state, "state.json").readText())
            assertNull("nothing installed from state '$text'", updater().current())
        }
        state.deleteRecursively()
        File(state, "state.json").mkdirs()  // a directory where the file belongs
        assertEquals("state_unreadable", updater().sync().reason)
        assertEquals("no check ran on an unreadable state", emptyList<String>(), server.requests.toList())
        // staging only ever holds resumable partial downloads: a file in its place is set aside, and the check runs
        state.deleteRecursively()
        state.mkdirs()
        File(state, "staging").writeText("a file where a directory belongs")
        val r = updater().sync()
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertEquals(listOf(Repair.STATE_REBUILT), r.repairs)
        assertEquals("a file where a directory belongs", File(state, "staging.damaged").readText())
    }
}
