package dev.mobileml.updater

import java.io.File
import java.io.FileOutputStream
import java.io.IOException

/**
 * Resumable downloads of signed files into staging (`docs/update-protocol.md` §5 step 7): `Range` + `If-Range` with
 * the stored strong ETag, never past the signed length, then length and sha256. A cut download keeps its partial
 * file (`<sha256>.part` + `.etag`) and the next check resumes it.
 */
internal class Downloader(private val store: Store, private val http: Http, private val listener: UpdateListener?) {
    /** The verified file in staging. A partial file that turns out corrupt is dropped and fetched once more. */
    fun download(entry: FileEntry): File {
        val part = File(store.staging, "${entry.sha256}.part")
        val etagFile = File(store.staging, "${entry.sha256}.etag")
        if (part.length() == entry.length) {  // complete from an earlier check that failed on another file
            try {
                Updater.checkFile(part, entry)
                return part
            } catch (e: Rejected) {
                part.delete()
            }
        }
        for (attempt in 1..2) {
            val resumedFrom = fetch(entry, part, etagFile)
            try {
                Updater.checkFile(part, entry)
                return part
            } catch (e: Rejected) {
                part.delete()
                etagFile.delete()
                if (attempt == 2 || resumedFrom == 0L) throw e
            }
        }
        throw IllegalStateException("unreachable")
    }

    /** One GET into [part], resuming when it can; returns the offset the transfer started at. */
    private fun fetch(entry: FileEntry, part: File, etagFile: File): Long {
        var have = if (part.exists()) part.length() else 0L
        var headers = emptyMap<String, String>()
        if (have in 1 until entry.length && etagFile.exists()) {
            headers = mapOf("Range" to "bytes=$have-", "If-Range" to etagFile.readText())
        } else if (have >= entry.length) {
            part.delete()
            have = 0
        }
        val resp = http.open(entry.url, headers)
        try {
            val range = resp.header("Content-Range") ?: ""
            val append = resp.status == 206 && range.startsWith("bytes $have-")
            // 200: the whole file (no resume, or the content changed since the partial file was written).
            if (!append) have = 0
            val total = if (append) range.substringAfterLast('/') else resp.header("Content-Length")
            if (total?.toLongOrNull() != null && total.toLong() != entry.length) {
                part.delete()
                etagFile.delete()
                throw Rejected("length_mismatch", "${entry.url}: server has $total bytes, signed ${entry.length}")
            }
            resp.header("ETag")?.let { etagFile.writeText(it) }
            listener?.onStart(entry.name, have, entry.length)
            copyCapped(resp, part, append, have, entry)
        } finally {
            resp.close()
        }
        return have
    }

    private fun copyCapped(resp: Response, part: File, append: Boolean, start: Long, entry: FileEntry) {
        var have = start
        FileOutputStream(part, append).use { out ->
            val buf = ByteArray(Updater.CHUNK)
            try {
                while (have < entry.length) {
                    val n = resp.read(buf, 0, minOf(buf.size.toLong(), entry.length - have).toInt())
                    if (n < 0) break
                    out.write(buf, 0, n)
                    have += n
                    notify(entry, have)
                }
            } catch (e: IOException) {
                throw UpdateFailed("network", "${entry.url}: ${e.javaClass.simpleName}: ${e.message} (will resume)")
            } finally {
                out.flush()
                out.fd.sync()
            }
        }
        if (have < entry.length) {
            throw UpdateFailed("network", "${entry.url}: connection closed with ${entry.length - have} bytes to go (will resume)")
        }
    }

    private fun notify(entry: FileEntry, have: Long) {
        val l = listener ?: return
        try {
            l.onProgress(entry.name, have, entry.length)
        } catch (e: Exception) {
            throw UpdateFailed("interrupted", "${entry.name}: stopped at $have of ${entry.length} bytes (will resume)")
        }
    }
}
