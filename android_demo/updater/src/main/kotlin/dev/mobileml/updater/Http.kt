package dev.mobileml.updater

import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URL

/** One HTTP response: status, the headers the protocol uses, and the body stream (empty for 304/416). */
internal class Response(val status: Int, private val conn: HttpURLConnection, val body: InputStream) {
    fun header(name: String): String? = conn.getHeaderField(name)

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
internal class Http(private val base: String, private val timeoutMillis: Int) {
    fun open(path: String, headers: Map<String, String> = emptyMap()): Response {
        try {
            val conn = URL(base + path).openConnection() as HttpURLConnection
            conn.connectTimeout = timeoutMillis
            conn.readTimeout = timeoutMillis
            conn.useCaches = false  // the updater does its own ETag bookkeeping; an HTTP cache would hide 304s
            // Android's HttpURLConnection gunzips transparently and then byte ranges no longer match the file.
            conn.setRequestProperty("Accept-Encoding", "identity")
            for ((k, v) in headers) conn.setRequestProperty(k, v)
            val status = conn.responseCode
            if (status == 304 || status == 416) return Response(status, conn, java.io.ByteArrayInputStream(ByteArray(0)))
            if (status !in 200..299) {
                conn.disconnect()
                throw UpdateFailed("http_$status", "$path: HTTP $status")
            }
            return Response(status, conn, conn.inputStream)
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
                val n = resp.body.read(buf, 0, want)
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

    fun post(path: String, contentType: String, body: ByteArray): Int {
        val conn = URL(base + path).openConnection() as HttpURLConnection
        try {
            conn.connectTimeout = timeoutMillis
            conn.readTimeout = timeoutMillis
            conn.requestMethod = "POST"
            conn.doOutput = true
            conn.setFixedLengthStreamingMode(body.size)
            conn.setRequestProperty("Content-Type", contentType)
            conn.outputStream.use { it.write(body) }
            val status = conn.responseCode
            (if (status < 400) conn.inputStream else conn.errorStream)?.use { it.readBytes() }
            return status
        } finally {
            conn.disconnect()
        }
    }
}
