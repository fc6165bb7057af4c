package dev.mobileml.updater

import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import java.util.Collections
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
    private val server = Server()

    /** What the server does for a path it serves: normal, dripping after [fastBytes], or endless. */
    private enum class Mode { NORMAL, DRIP, STALL }

    @Volatile private var blobMode = Mode.NORMAL
    @Volatile private var manifestMode = Mode.NORMAL
    @Volatile private var telemetryReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    @Volatile private var telemetryEndless = false
    @Volatile private var telemetryDrip = false
    private val fastBytes = 20000

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
        manifestMode = Mode.DRIP
        val started = System.currentTimeMillis()
        val r = updater(deadlineMillis = 1500).sync()
        val took = System.currentTimeMillis() - started
        assertEquals(Outcome.FAILED, r.outcome)
        assertEquals("network", r.reason)
        assertTrue("the check took $took ms", took < 1500 + 5000)
    }

    @Test(timeout = 30000)
    fun aSilentServerIsCutAtTheDeadlineNotAtTheSocketTimeout() {
        manifestMode = Mode.STALL  // headers and a few bytes, then nothing: the socket timeout (5 s) is not the limit
        val started = System.currentTimeMillis()
        val r = updater(deadlineMillis = 1000).sync()
        val took = System.currentTimeMillis() - started
        assertEquals(r.toString(), "network", r.reason)
        assertTrue("the check took $took ms", took < 1000 + 2500)
    }

    @Test(timeout = 30000)
    fun aBlobBelowTheMinimumRateIsCutAndResumedByTheNextCheck() {
        blobMode = Mode.DRIP
        val r = updater(minRate = 2000, windowMillis = 500).sync()
        assertEquals(r.toString(), "network", r.reason)
        val part = File(state, "staging/${Codec.sha256Hex(model)}.part")
        val kept = part.length()
        assertTrue("the partial download is kept: $kept bytes", kept >= fastBytes && kept < model.size)
        blobMode = Mode.NORMAL
        val again = updater(minRate = 2000, windowMillis = 500).sync()
        assertEquals(again.toString(), Outcome.INSTALLED, again.outcome)
        assertTrue(server.requests.toString(), server.requests.any { it == "GET blob bytes=$kept-" })
        assertArrayEquals(model, File(state, "versions/1.0.0/model.tflite").readBytes())
    }

    @Test(timeout = 30000)
    fun anEndlessTelemetryReplyIsReadOnlyUpToItsCap() {
        telemetryEndless = true
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
            telemetryReply = reply
            state.deleteRecursively()
            val r = updater(telemetry = true).sync()
            assertEquals("reply '$reply': $r", Outcome.INSTALLED, r.outcome)
        }
        telemetryDrip = true  // a reply dripped past the deadline: cut, and still not the check's failure
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
        state.deleteRecursively()
        state.mkdirs()
        File(state, "staging").writeText("a file where a directory belongs")
        assertEquals("state_unreadable", updater().sync().reason)
        assertEquals("no check ran on an unreadable state", emptyList<String>(), server.requests.toList())
    }

    // -- the channel, signed with the test's key -------------------------------------------------------------------

    private fun signed(): Pair<ByteArray, ByteArray> {
        fun file(name: String, data: ByteArray) = mapOf("length" to data.size.toLong(), "name" to name,
                                                       "sha256" to Codec.sha256Hex(data), "url" to "blobs/$name")
        val release = mapOf("files" to listOf(file("model.tflite", model), file("metadata.json", metadata)),
                            "metadata" to emptyMap<String, Any?>(), "min_app_version" to "0.0.0", "model" to "digits",
                            "parity" to emptyMap<String, Any?>(),
                            "runtime" to mapOf("min_version" to "1.0.0", "name" to "litert"), "variant" to "int8",
                            "version" to "1.0.0")
        val now = System.currentTimeMillis()
        val manifest = mapOf("action" to "publish", "channel" to "stable", "expires" to Manifest.formatTime(now + 86400000),
                             "fallback" to null, "issued_at" to Manifest.formatTime(now - 60000),
                             "key_id" to Keys.keyId(keyPair.public), "manifest_version" to 5L, "model" to "digits",
                             "release" to release, "rollout" to mapOf("halted" to false, "percent" to 100L, "salt" to "s"),
                             "schema" to "mobile_ml.manifest", "schema_version" to 1L)
        val raw = Json.write(manifest).toByteArray()
        val s = Signature.getInstance("SHA256withECDSA")
        s.initSign(keyPair.private)
        s.update(raw)
        return raw to s.sign()
    }

    /** HTTP/1.1 on loopback, one thread per connection, `Connection: close`; records what was asked. */
    private inner class Server : AutoCloseable {
        private val socket = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
        val url = "http://127.0.0.1:${socket.localPort}/"
        val requests: MutableList<String> = Collections.synchronizedList(ArrayList())
        @Volatile private var closed = false
        private val channel = signed()

        init {
            thread {
                while (!closed) {
                    val c = try {
                        socket.accept()
                    } catch (e: java.io.IOException) {
                        break  // closed
                    }
                    thread { serve(c) }
                }
            }
        }

        private fun thread(body: () -> Unit) = Thread(body).also { it.isDaemon = true; it.start() }

        override fun close() {
            closed = true
            socket.close()
        }

        private fun serve(c: Socket): Unit = c.use {
            try {
                val input = c.getInputStream().bufferedReader(Charsets.ISO_8859_1)
                val line = input.readLine() ?: return
                val headers = java.util.TreeMap<String, String>(String.CASE_INSENSITIVE_ORDER)
                while (true) {
                    val h = input.readLine() ?: return
                    if (h.isEmpty()) break
                    headers[h.substringBefore(':')] = h.substringAfter(':').trim()
                }
                val (method, path) = line.split(' ')
                val out = c.getOutputStream()
                when {
                    method == "POST" -> postTelemetry(out)
                    path == "/digits/channels/stable.json" -> body(out, channel.first, manifestMode, headers)
                    path == "/digits/channels/stable.json.sig" -> body(out, channel.second, Mode.NORMAL, headers)
                    path == "/blobs/model.tflite" -> {
                        requests.add("GET blob ${headers["range"] ?: "whole"}")
                        body(out, model, blobMode, headers)
                    }
                    path == "/blobs/metadata.json" -> body(out, metadata, Mode.NORMAL, headers)
                    else -> out.write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".toByteArray())
                }
                if (!path.startsWith("/blobs/model") && method != "POST") requests.add("$method $path")
            } catch (e: java.io.IOException) {
                // the client gave up: what the attack wanted to see
            }
        }

        private fun body(out: OutputStream, data: ByteArray, mode: Mode, headers: Map<String, String>) {
            val from = headers["range"]?.removePrefix("bytes=")?.removeSuffix("-")?.toIntOrNull() ?: 0
            val status = if (from > 0) "206 Partial Content" else "200 OK"
            val range = if (from > 0) "Content-Range: bytes $from-${data.size - 1}/${data.size}\r\n" else ""
            out.write(("HTTP/1.1 $status\r\nContent-Length: ${data.size - from}\r\n${range}ETag: \"v1\"\r\n" +
                "Connection: close\r\n\r\n").toByteArray())
            val fast = if (mode == Mode.DRIP) minOf(fastBytes, data.size - from).coerceAtLeast(0) else data.size - from
            if (mode == Mode.STALL) {
                out.write(data, from, 10)
                out.flush()
                while (!closed) Thread.sleep(50)
                return
            }
            if (mode == Mode.DRIP && data.size < 10000) {  // a manifest: drip from the first byte
                dripFrom(out, data, from)
                return
            }
            out.write(data, from, fast)
            out.flush()
            dripFrom(out, data, from + fast)
        }

        private fun dripFrom(out: OutputStream, data: ByteArray, start: Int) {
            for (i in start until data.size) {
                if (closed) return
                out.write(data[i].toInt())
                out.flush()
                Thread.sleep(50)
            }
        }

        private fun postTelemetry(out: OutputStream) {
            requests.add("POST telemetry")
            if (telemetryDrip) {
                out.write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".toByteArray())
                dripFrom(out, ByteArray(100000), 0)
                return
            }
            if (!telemetryEndless) {
                out.write(telemetryReply.toByteArray())
                return
            }
            out.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".toByteArray())
            val chunk = ByteArray(64 * 1024)
            while (!closed) out.write(chunk)
        }
    }
}
