package dev.mobileml.updater

import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.security.KeyPair
import java.security.Signature
import java.util.Collections

/**
 * A publish root on loopback for the tests that attack transport or storage, never the signature: one channel,
 * digits/stable, signed with [keyPair]; [publish] replaces it (a new release, or a replayed older manifest).
 * HTTP/1.1, one thread per connection, `Connection: close`; it records what was asked.
 */
internal class LoopbackServer(private val keyPair: KeyPair, private val model: ByteArray,
                              private val metadata: ByteArray) : AutoCloseable {
    /** What the server does for a path it serves: normal, dripping after [fastBytes], or endless. */
    enum class Mode { NORMAL, DRIP, STALL }

    @Volatile var blobMode = Mode.NORMAL
    @Volatile var manifestMode = Mode.NORMAL
    @Volatile var telemetryReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    @Volatile var telemetryEndless = false
    @Volatile var telemetryDrip = false
    val fastBytes = 20000

    private val socket = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    val url = "http://127.0.0.1:${socket.localPort}/"
    val requests: MutableList<String> = Collections.synchronizedList(ArrayList())
    /** The `Authorization` header of each telemetry POST ("" when there was none). */
    val telemetryAuth: MutableList<String> = Collections.synchronizedList(ArrayList())
    /** What each POST to /v1/aggregates and /v1/capture carried, and the status the next ones get. */
    class Post(val path: String, val headers: Map<String, String>, val body: ByteArray)
    val posts: MutableList<Post> = Collections.synchronizedList(ArrayList())
    @Volatile var postStatus = 202
    @Volatile private var closed = false
    @Volatile private var channel = signed("1.0.0", 5)

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

    /** Serve a channel manifest choosing [version] (same model bytes), as manifest_version [manifestVersion]. */
    fun publish(version: String, manifestVersion: Long) {
        channel = signed(version, manifestVersion)
    }

    private fun signed(version: String, manifestVersion: Long): Pair<ByteArray, ByteArray> {
        fun file(name: String, data: ByteArray) = mapOf("length" to data.size.toLong(), "name" to name,
                                                       "sha256" to Codec.sha256Hex(data), "url" to "blobs/$name")
        val release = mapOf("files" to listOf(file("model.tflite", model), file("metadata.json", metadata)),
                            "metadata" to emptyMap<String, Any?>(), "min_app_version" to "0.0.0", "model" to "digits",
                            "parity" to emptyMap<String, Any?>(),
                            "runtime" to mapOf("min_version" to "1.0.0", "name" to "litert"), "variant" to "int8",
                            "version" to version)
        val now = System.currentTimeMillis()
        val manifest = mapOf("action" to "publish", "channel" to "stable", "expires" to Manifest.formatTime(now + 86400000),
                             "fallback" to null, "issued_at" to Manifest.formatTime(now - 60000),
                             "key_id" to Keys.keyId(keyPair.public), "manifest_version" to manifestVersion,
                             "model" to "digits", "release" to release,
                             "rollout" to mapOf("halted" to false, "percent" to 100L, "salt" to "s"),
                             "schema" to "mobile_ml.manifest", "schema_version" to 1L)
        val raw = Json.write(manifest).toByteArray()
        val s = Signature.getInstance("SHA256withECDSA")
        s.initSign(keyPair.private)
        s.update(raw)
        return raw to s.sign()
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
            val (manifest, sig) = channel
            when {
                method == "POST" && (path == "/v1/aggregates" || path == "/v1/capture") -> postRecorded(out, path, input, headers)
                method == "POST" -> postTelemetry(out, headers)
                path == "/digits/channels/stable.json" -> body(out, manifest, manifestMode, headers)
                path == "/digits/channels/stable.json.sig" -> body(out, sig, Mode.NORMAL, headers)
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

    private fun postTelemetry(out: OutputStream, headers: Map<String, String>) {
        requests.add("POST telemetry")
        telemetryAuth.add(headers["authorization"] ?: "")
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

    private fun postRecorded(out: OutputStream, path: String, input: java.io.BufferedReader, headers: Map<String, String>) {
        val length = headers["content-length"]?.toInt() ?: 0
        val chars = CharArray(length)
        var got = 0
        while (got < length) {
            val n = input.read(chars, got, length - got)
            if (n < 0) break
            got += n
        }
        val copy = java.util.TreeMap<String, String>(String.CASE_INSENSITIVE_ORDER).also { it.putAll(headers) }
        posts.add(Post(path, copy, String(chars, 0, got).toByteArray(Charsets.ISO_8859_1)))
        val status = postStatus
        out.write("HTTP/1.1 $status X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".toByteArray())
    }
}
