package dev.mobileml.updater

import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URL

/**
 * One check's time budget (issue 12, threat 7): an overall deadline, and a minimum transfer rate measured over
 * windows of [windowMillis], so a server dripping bytes cannot hold a check for hours. A connection's socket
 * timeouts never reach past the deadline either, so a silent server cannot stretch the last read.
 */
internal class Pace(private val deadlineNanos: Long, private val minBytesPerSecond: Long, private val windowMillis: Long) {
    /** The socket timeout for a new connection: [timeoutMillis], or less when the deadline is nearer. */
    fun timeout(timeoutMillis: Int): Int =
        minOf(timeoutMillis.toLong(), (deadlineNanos - System.nanoTime()) / 1000000).coerceAtLeast(1).toInt()

    fun checkDeadline(what: String) {
        if (System.nanoTime() - deadlineNanos > 0) throw UpdateFailed("network", "$what: the check's deadline passed")
    }

    /** Counts one response's bytes: below the minimum rate over a whole window, the transfer is abandoned. */
    inner class Meter(private val what: String) {
        private var windowStart = System.nanoTime()
        private var bytes = 0L

        fun read(input: InputStream, buf: ByteArray, off: Int, len: Int): Int {
            checkDeadline(what)
            val n = input.read(buf, off, len)
            if (n > 0) bytes += n
            val now = System.nanoTime()
            val elapsedMillis = (now - windowStart) / 1000000
            if (elapsedMillis >= windowMillis) {
                if (bytes * 1000 < minBytesPerSecond * elapsedMillis) {
                    throw UpdateFailed("network", "$what: $bytes bytes in $elapsedMillis ms, under $minBytesPerSecond B/s")
                }
                windowStart = now
                bytes = 0
            }
            return n
        }
    }

    companion object {
        fun start(config: UpdaterConfig) = Pace(System.nanoTime() + config.checkDeadlineMillis * 1000000,
                                                config.minBytesPerSecond, config.rateWindowMillis)
    }
}

/** One HTTP response: status, the headers the protocol uses, and the body stream (empty for 304/416). */
internal class Response(val status: Int, private val conn: HttpURLConnection, val body: InputStream,
                        private val meter: Pace.Meter) {
    fun header(name: String): String? = conn.getHeaderField(name)

    /** Every read of a body goes through here: the check's deadline and minimum rate apply to it. */
    fun read(buf: ByteArray, off: Int, len: Int): Int = meter.read(body, buf, off, len)

    fun close() {
        try {
            body.close()
        } catch (e: IOException) {
            // nothing to keep: the connection is done with either way
        }
        conn.disconnect()
    }
}

/** GETs relative to the publish root with HttpURLConnection (in every Android version and every JVM). */
internal class Http(private val base: String, private val timeoutMillis: Int, private val pace: () -> Pace) {
    fun open(path: String, headers: Map<String, String> = emptyMap()): Response {
        val p = pace()
        p.checkDeadline(path)
        try {
            val conn = URL(base + path).openConnection() as HttpURLConnection
            conn.connectTimeout = p.timeout(timeoutMillis)
            conn.readTimeout = p.timeout(timeoutMillis)
            conn.useCaches = false  // the updater does its own ETag bookkeeping; an HTTP cache would hide 304s
            // Android's HttpURLConnection gunzips transparently and then byte ranges no longer match the file.
            conn.setRequestProperty("Accept-Encoding", "identity")
            for ((k, v) in headers) conn.setRequestProperty(k, v)
            val status = conn.responseCode
            if (status == 304 || status == 416) {
                return Response(status, conn, java.io.ByteArrayInputStream(ByteArray(0)), p.Meter(path))
            }
            if (status !in 200..299) {
                conn.disconnect()
                throw UpdateFailed("http_$status", "$path: HTTP $status")
            }
            return Response(status, conn, conn.inputStream, p.Meter(path))
        } catch (e: IOException) {
            throw UpdateFailed("network", "$path: ${e.javaClass.simpleName}: ${e.message}")
        }
    }

    /** The whole body if it is at most [cap] bytes; reads at most cap + 1 bytes to find out. */
    fun readCapped(resp: Response, cap: Int, what: String): ByteArray {
        try {
            val out = java.io.ByteArrayOutputStream()
            val buf = ByteArray(16 * 1024)
            while (true) {
                val want = minOf(buf.size, cap + 1 - out.size())
                if (want <= 0) break
                val n = resp.read(buf, 0, want)
                if (n < 0) break
                out.write(buf, 0, n)
            }
            if (out.size() > cap) throw Rejected("too_large", "$what is over $cap bytes")
            return out.toByteArray()
        } catch (e: IOException) {
            throw UpdateFailed("network", "$what: ${e.javaClass.simpleName}: ${e.message}")
        } finally {
            resp.close()
        }
    }

    /** POST [body]; the status. The reply is read (to reuse the connection) but never more than [MAX_REPLY] bytes. */
    fun post(path: String, contentType: String, body: ByteArray, headers: Map<String, String> = emptyMap()): Int {
        val p = pace()
        p.checkDeadline(path)
        val conn = URL(base + path).openConnection() as HttpURLConnection
        try {
            conn.connectTimeout = p.timeout(timeoutMillis)
            conn.readTimeout = p.timeout(timeoutMillis)
            conn.requestMethod = "POST"
            conn.doOutput = true
            conn.setFixedLengthStreamingMode(body.size)
            conn.setRequestProperty("Content-Type", contentType)
            for ((k, v) in headers) conn.setRequestProperty(k, v)
            conn.outputStream.use { it.write(body) }
            val status = conn.responseCode
            (if (status < 400) conn.inputStream else conn.errorStream)?.use { input ->
                val meter = p.Meter(path)
                val buf = ByteArray(4096)
                var total = 0
                while (total < MAX_REPLY) {
                    val n = meter.read(input, buf, 0, minOf(buf.size, MAX_REPLY - total))
                    if (n < 0) break
                    total += n
                }
            }
            return status
        } finally {
            conn.disconnect()
        }
    }

    companion object {
        const val MAX_REPLY = 64 * 1024  // a telemetry reply is a few bytes of JSON; more is not read
    }
}
