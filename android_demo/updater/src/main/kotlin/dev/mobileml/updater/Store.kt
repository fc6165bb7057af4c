package dev.mobileml.updater

import java.io.File
import java.io.FileOutputStream
import java.io.IOException

/**
 * The device's files, as the Python reference client lays them out:
 *
 *     state.json            per model/channel: last accepted manifest (version, sha256, ETag) and the version it
 *                           chose; the trusted key; current/previous version; the last check
 *     versions/<version>/   model.tflite + metadata.json of the current and the previous release
 *     current.json          the pointer the app reads: which version directory is live
 *     staging/              partial downloads (<sha256>.part + .etag), removed once installed or refused
 */
internal class Store(val dir: File) {
    val staging = File(dir, "staging")
    val versions = File(dir, "versions")

    /** The state directory and its subdirectories (a file in the way: the check fails as `state_unreadable`). */
    fun prepare() {
        for (d in listOf(dir, staging, versions)) {
            if (!d.isDirectory && !d.mkdirs()) throw UpdateFailed("io", "cannot create $d")
        }
    }

    /**
     * `state.json`, or an empty state when the device never checked (no file). Anything else that cannot be read
     * is `UpdateFailed("state_unreadable")`: the caller fails closed.
     */
    fun loadState(): MutableMap<String, Any?> {
        val file = File(dir, "state.json")
        if (!file.exists()) return LinkedHashMap()
        val bytes = try {
            file.readBytes()  // a directory, or unreadable
        } catch (e: IOException) {
            throw UpdateFailed("state_unreadable", "cannot read $file: ${e.message}")
        }
        val doc = try {
            Json.parse(Json.decodeUtf8(bytes))
        } catch (e: Json.ParseError) {
            throw UpdateFailed("state_unreadable", "$file is not valid JSON: ${e.message}")
        }
        return LinkedHashMap(DeviceState.check(doc))
    }

    fun saveState(state: Map<String, Any?>) = writeAtomic(File(dir, "state.json"), Json.write(state).toByteArray())

    fun current(): InstalledModel? = try {
        val pointer = Json.parseObject(File(dir, "current.json").readBytes())
        val version = pointer["version"] as String
        val vdir = File(versions, version)
        InstalledModel(version, vdir, File(vdir, "model.tflite"), Json.parseObject(File(vdir, "metadata.json").readBytes()))
    } catch (e: IOException) {
        null
    } catch (e: Json.ParseError) {
        null
    } catch (e: ClassCastException) {
        null
    } catch (e: NullPointerException) {
        null
    }

    /** Move verified files into a hidden `versions/.<version>.tmp/`, where the health check runs on them. */
    fun stage(version: String, files: Map<String, File>): File {
        val tmp = File(versions, ".$version.tmp")
        tmp.deleteRecursively()
        if (!tmp.mkdirs()) throw UpdateFailed("io", "cannot create $tmp")
        for ((name, file) in files) {
            if (!file.renameTo(File(tmp, name))) throw UpdateFailed("io", "cannot move $file into $tmp")
        }
        return tmp
    }

    /**
     * Make [staged] `versions/<version>/` and switch by one atomic rename of `current.json`: a crash at any point
     * leaves either the old or the new model live, never a mix. Keeps [keep] (the previous version) and the new one.
     */
    fun commit(version: String, staged: File, keep: String?) {
        val final = File(versions, version)
        final.deleteRecursively()
        if (!staged.renameTo(final)) throw UpdateFailed("io", "cannot rename $staged to $final")
        writeAtomic(File(dir, "current.json"), Json.write(mapOf("version" to version)).toByteArray())
        for (d in versions.listFiles() ?: emptyArray()) {
            if (d.name != version && d.name != keep) d.deleteRecursively()
        }
    }

    companion object {
        /** Write, fsync, rename. (Directory fsync needs java.nio.file, API 26; rename is atomic on ext4/f2fs.) */
        fun writeAtomic(target: File, data: ByteArray) {
            val tmp = File(target.parentFile, ".${target.name}.tmp")
            try {
                FileOutputStream(tmp).use { out ->
                    out.write(data)
                    out.flush()
                    out.fd.sync()
                }
                if (!tmp.renameTo(target)) throw IOException("rename failed")
            } catch (e: IOException) {
                tmp.delete()
                throw UpdateFailed("io", "cannot write $target: ${e.message}")
            }
        }
    }
}
