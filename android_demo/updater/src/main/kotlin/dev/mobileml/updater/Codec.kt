package dev.mobileml.updater

import java.security.MessageDigest

/** Hex, base64 and sha256 without java.util.Base64 (API 26+) or android.util.Base64 (not on a JVM): minSdk is 24. */
internal object Codec {
    private const val HEX = "0123456789abcdef"
    private const val B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    fun sha256(data: ByteArray): ByteArray = MessageDigest.getInstance("SHA-256").digest(data)

    fun sha256Hex(data: ByteArray): String = hex(sha256(data))

    fun hex(bytes: ByteArray): String {
        val sb = StringBuilder(bytes.size * 2)
        for (b in bytes) {
            val v = b.toInt() and 0xff
            sb.append(HEX[v ushr 4]).append(HEX[v and 0xf])
        }
        return sb.toString()
    }

    /** Standard base64 with padding; whitespace is skipped (public.b64 may end in a newline). */
    fun base64Decode(text: String): ByteArray {
        val out = java.io.ByteArrayOutputStream(text.length * 3 / 4)
        var buffer = 0
        var bits = 0
        var padding = 0
        for (c in text) {
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue
            if (c == '=') { padding++; continue }
            if (padding > 0) throw IllegalArgumentException("base64: data after padding")
            val v = B64.indexOf(c)
            if (v < 0) throw IllegalArgumentException("base64: invalid character")
            buffer = (buffer shl 6) or v
            bits += 6
            if (bits >= 8) {
                bits -= 8
                out.write((buffer shr bits) and 0xff)
            }
        }
        if (bits >= 6 || padding > 2) throw IllegalArgumentException("base64: truncated")
        return out.toByteArray()
    }

    fun base64Encode(data: ByteArray): String {
        val sb = StringBuilder((data.size + 2) / 3 * 4)
        var i = 0
        while (i < data.size) {
            val b0 = data[i].toInt() and 0xff
            val b1 = if (i + 1 < data.size) data[i + 1].toInt() and 0xff else 0
            val b2 = if (i + 2 < data.size) data[i + 2].toInt() and 0xff else 0
            sb.append(B64[b0 ushr 2]).append(B64[((b0 and 3) shl 4) or (b1 ushr 4)])
            sb.append(if (i + 1 < data.size) B64[((b1 and 0xf) shl 2) or (b2 ushr 6)] else '=')
            sb.append(if (i + 2 < data.size) B64[b2 and 0x3f] else '=')
            i += 3
        }
        return sb.toString()
    }
}
