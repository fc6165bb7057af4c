package dev.mobileml.updater

import java.io.File
import java.io.FileOutputStream
import java.io.IOException

/**
 * The device's files, as the Python reference client lays them out:
 *
 *     state.json            per model/channel: last accepted manifest (version, sha256, ETag) and the version it
 *                           chose; the trusted key; current/previous version; the last check
 *     state.backup.json     the same bytes, written right after state.json: rebuilds a damaged state.json without
 *                           losing the anti-rollback floor or a rotated key
 *     versions/<version>/   model.tflite + metadata.json of the current and the previous release, and .release.json:
 *                           the verified release they came from, checked on every check
 *     current.json          the pointer the app reads: which version directory is live
 *     staging/              partial downloads (<sha256>.part + .etag), removed once installed or refused
 */
internal class Store(val dir: File) {
    val staging = File(dir, "staging")
    val versions = File(dir, "versions")
    val pointer = File(dir, POINTER)

    /** The state, and what had to be repaired to read it (with a note saying what was damaged). */
    class Opened(val state: MutableMap<String, Any?>, val repairs: List<Repair>, val note: String)

    /**
     * The state directory, read for a check: a `staging` that is not a directory (it only ever held resumable
     * partial downloads) is set aside and recreated; a damaged or missing `state.json` is rebuilt from
     * `state.backup.json`. `UpdateFailed("state_unreadable")` when neither copy can be read: the caller fails closed.
     */
    fun open(): Opened {
        var repairs = emptyList<Repair>()
        var note = ""
        if (staging.exists() && !staging.isDirectory) {
            setAside(staging)
            repairs = listOf(Repair.STATE_REBUILT)
            note = "$staging was not a directory: recreated"
        }
        for (d in listOf(dir, staging, versions)) {
            if (!d.isDirectory && !d.mkdirs()) throw UpdateFailed("state_unreadable", "cannot create $d")
        }
        val primary = File(dir, STATE)
        val problem = try {
            val state = readState(primary)
            if (state != null) return Opened(state, repairs, note)
            null
        } catch (e: UpdateFailed) {
            e.detail
        }
        val why = problem ?: "$primary is missing"
        val backup = try {
            readState(File(dir, BACKUP))
        } catch (e: UpdateFailed) {
            throw UpdateFailed("state_unreadable", "$why; its backup too: ${e.detail}")
        }
        if (backup == null) {
            if (problem != null) throw UpdateFailed("state_unreadable", problem)  // as a device of an older client
            return Opened(LinkedHashMap(), repairs, note)  // never checked
        }
        setAside(primary)
        saveState(backup)
        return Opened(backup, listOf(Repair.STATE_REBUILT), "$why: rebuilt from $BACKUP")
    }

    /** The state as it is, for display: state.json, else its backup, else null. Never writes. */
    fun peekState(): Map<String, Any?>? {
        for (name in listOf(STATE, BACKUP)) {
            try {
                readState(File(dir, name))?.let { return it }
            } catch (e: UpdateFailed) {
                // try the other copy
            }
        }
        return null
    }

    /** A state file, or null when there is none. Anything else that cannot be read is `state_unreadable`. */
    private fun readState(file: File): MutableMap<String, Any?>? {
        if (!file.exists()) return null
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
        return LinkedHashMap(DeviceState.check(doc, file.name))
    }

    /** Move a damaged file or directory out of the way, to NAME.damaged, kept for inspection. */
    private fun setAside(file: File) {
        if (!file.exists()) return  // missing, not damaged: nothing to keep
        val aside = File(file.parentFile, file.name + DAMAGED)
        aside.deleteRecursively()
        if (!file.renameTo(aside)) throw UpdateFailed("state_unreadable", "cannot move $file aside to $aside")
    }

    /** state.json, then its backup: a crash between the two leaves both readable, one a check older. */
    fun saveState(state: Map<String, Any?>) {
        val data = Json.write(state).toByteArray()
        writeAtomic(File(dir, STATE), data)
        writeAtomic(File(dir, BACKUP), data)
    }

    /** The installed model the app should run, or null when there is none or its files are damaged. */
    fun current(): InstalledModel? {
        if (installedProblem() != null) return null
        val vdir = File(versions, readPointer() ?: return null)
        return try {
            val metadata = Json.parseObject(File(vdir, "metadata.json").readBytes())
            InstalledModel(vdir.name, vdir, File(vdir, "model.tflite"), metadata)
        } catch (e: IOException) {
            null
        } catch (e: Json.ParseError) {
            null
        }
    }

    /** current.json's version, or null when it cannot be read (strictly: `mobile_ml.current_model`, version 1). */
    private fun readPointer(): String? = try {
        pointerVersion()
    } catch (e: UpdateFailed) {
        null
    }

    private fun pointerVersion(): String = try {
        val doc = Json.parseObject(pointer.readBytes())
        val f = Fields(doc, "")
        if (doc.containsKey("schema")) {  // written before the schema key existed: none
            if (f.string("schema") != POINTER_SCHEMA) throw f.error("schema", "is not $POINTER_SCHEMA")
            f.integer("schema_version", 1, 1)
        }
        val version = f.string("version", Semver.PATTERN, 64)
        f.done()
        version
    } catch (e: IOException) {
        throw UpdateFailed("model", "cannot read $pointer: ${e.message}")
    } catch (e: Json.ParseError) {
        throw UpdateFailed("model", "$pointer is not valid JSON: ${e.message}")
    } catch (e: Rejected) {
        throw UpdateFailed("model", "$pointer: ${e.detail}")
    }

    /**
     * What is wrong with the installed model the app would load (null: it is whole): current.json, the version
     * directory, and every file's size and sha256 against the release it was installed from (installs older than
     * `.release.json`: the model against its metadata.json).
     */
    fun installedProblem(): String? {
        val version = try {
            pointerVersion()
        } catch (e: UpdateFailed) {
            return e.detail
        }
        val vdir = File(versions, version)
        try {
            val meta = Json.parseObject(File(vdir, "metadata.json").readBytes())
            val releaseFile = File(vdir, RELEASE)
            val expected = if (releaseFile.exists()) Manifest.parseRelease(releaseFile.readBytes()).files else {
                val m = meta["model"] as? Map<*, *>
                val length = m?.get("bytes") as? Long
                val sha256 = m?.get("sha256") as? String
                if (length == null || sha256 == null) return "${File(vdir, "metadata.json")} has no model.bytes/sha256"
                listOf(FileEntry("model.tflite", "", sha256, length))
            }
            for (e in expected) {
                val file = File(vdir, e.name)
                try {
                    Updater.checkFile(file, e)
                } catch (r: Rejected) {
                    return "$file is damaged (${file.length()} bytes, signed ${e.length}, or another sha256)"
                }
            }
        } catch (e: IOException) {
            return "$vdir: ${e.javaClass.simpleName}: ${e.message}"
        } catch (e: Json.ParseError) {
            return "$vdir: ${e.message}"
        } catch (e: Rejected) {
            return "${File(vdir, RELEASE)}: ${e.detail}"
        }
        return null
    }

    /** Remove half-written version copies (`versions/.<v>.tmp`) a crash or a full disk left behind. */
    fun cleanLeftovers() {
        for (d in versions.listFiles() ?: emptyArray()) {
            if (d.name.startsWith(".") && d.name.endsWith(".tmp")) d.deleteRecursively()
        }
    }

    /**
     * Move verified files into a hidden `versions/.<version>.tmp/`, where the health check runs on them, with
     * `.release.json`: the verified release they came from, against which every later check verifies them.
     */
    fun stage(release: Release, files: Map<String, File>): File {
        val tmp = File(versions, ".${release.version}.tmp")
        tmp.deleteRecursively()
        if (!tmp.mkdirs()) throw UpdateFailed("io", "cannot create $tmp")
        for ((name, file) in files) {
            if (!file.renameTo(File(tmp, name))) throw UpdateFailed("io", "cannot move $file into $tmp")
        }
        val doc = LinkedHashMap<String, Any?>()
        doc["schema"] = Manifest.RELEASE_SCHEMA
        doc["schema_version"] = 1L
        for ((k, v) in release.source) doc[k as String] = v
        writeAtomic(File(tmp, RELEASE), Json.write(doc).toByteArray())
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
        val doc = mapOf("schema" to POINTER_SCHEMA, "schema_version" to 1L, "version" to version)
        writeAtomic(pointer, Json.write(doc).toByteArray())
        for (d in versions.listFiles() ?: emptyArray()) {
            if (d.name != version && d.name != keep) d.deleteRecursively()
        }
    }

    companion object {
        const val STATE = "state.json"
        const val BACKUP = "state.backup.json"
        const val POINTER = "current.json"
        const val POINTER_SCHEMA = "mobile_ml.current_model"
        const val RELEASE = ".release.json"  // a manifest's file name starts with a letter or digit: never this one
        const val DAMAGED = ".damaged"  // suffix of a damaged file set aside, for inspection

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
