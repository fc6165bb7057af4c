package dev.mobileml.updater

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/**
 * Every case in `tests/vectors/`: the manifests, signatures, files, rotations and rollout buckets that the Python
 * reference client (`mobile_ml.publish.trust`) is tested on. Each case must give the same decision here.
 */
class VectorsTest {
    private val dir = File(System.getProperty("mobileml.vectors") ?: "../../tests/vectors")

    @Suppress("UNCHECKED_CAST")
    private fun load(name: String): Map<String, Any?> = Json.parseObject(File(dir, name).readBytes())

    private fun cases(doc: Map<String, Any?>, key: String): List<Map<String, Any?>> {
        @Suppress("UNCHECKED_CAST")
        val list = doc[key] as List<Map<String, Any?>>
        assertTrue("no '$key' cases in the vectors", list.isNotEmpty())
        return list
    }

    private val manifests = load("manifests.json")
    private val key = Keys.fromBase64(manifests["public_key_b64"] as String)
    private fun b64(v: Any?) = Codec.base64Decode(v as String)

    @Test
    fun pinnedKeyIdMatches() {
        assertEquals(manifests["key_id"], Keys.keyId(key))
    }

    /** Decision (accept or reject), reason code and, for `malformed`, the field Python's validator names. */
    @Test
    fun everyManifestCaseGetsTheSameDecisionReasonAndField() {
        val now = Manifest.parseTime(manifests["now"] as String)
        val wrong = ArrayList<String>()
        val all = cases(manifests, "cases")
        for (c in all) {
            var field: String? = null
            val got = try {
                Trust.checkManifest(b64(c["manifest_b64"]), b64(c["signature_b64"]), key, now, c["model"] as String,
                                    c["channel"] as String, c["last_version"] as Long?, c["last_sha256"] as String?)
                "accept"
            } catch (e: Rejected) {
                field = e.field
                e.reason
            }
            val expect = c["expect"] as String
            val decision = if (got == "accept") "accept" else "reject"
            val expectDecision = if (expect == "accept") "accept" else "reject"
            if (decision != expectDecision || got != expect) {
                wrong.add("${c["name"]}: expected $expect, got $got")
            } else if (c["field"] != null && field != c["field"]) {
                wrong.add("${c["name"]}: refused field '$field', expected '${c["field"]}'")
            }
        }
        assertEquals(emptyList<String>(), wrong)
        assertTrue(all.size >= 100)
        assertTrue("the vectors must name refused fields", all.count { it["field"] != null } >= 50)
        assertTrue("the vectors must include acceptances", all.any { it["expect"] == "accept" })
    }

    @Test
    fun everyFileCaseGetsTheSameDecisionInMemoryAndOnDisk() {
        val wrong = ArrayList<String>()
        val tmp = File.createTempFile("vector", ".bin")
        try {
            for (c in cases(manifests, "files")) {
                val e = c["entry"] as Map<*, *>
                val entry = FileEntry(e["name"] as String, e["url"] as String, e["sha256"] as String, e["length"] as Long)
                val data = b64(c["data_b64"])
                tmp.writeBytes(data)
                val inMemory = decide { Trust.checkFile(data, entry) }
                val onDisk = decide { Updater.checkFile(tmp, entry) }
                if (inMemory != c["expect"] || onDisk != c["expect"]) {
                    wrong.add("${c["name"]}: expected ${c["expect"]}, got $inMemory / $onDisk")
                }
            }
        } finally {
            tmp.delete()
        }
        assertEquals(emptyList<String>(), wrong)
    }

    @Test
    fun everyRotationCaseGetsTheSameDecision() {
        val wrong = ArrayList<String>()
        for (c in cases(manifests, "rotations")) {
            val newKey = Rotation.checkStatement(b64(c["statement_b64"]), b64(c["signature_b64"]), key,
                                                 c["model"] as String, c["new_key_id"] as String)
            val got = if (newKey != null) "accept" else "reject"
            if (got != c["expect"]) wrong.add("${c["name"]}: expected ${c["expect"]}, got $got")
            if (newKey != null) assertEquals(c["new_key_id"], Keys.keyId(newKey))
        }
        assertEquals(emptyList<String>(), wrong)
    }

    @Test
    fun everyBucketingCaseGetsTheSameBucketAndDecision() {
        val doc = load("bucketing.json")
        val wrong = ArrayList<String>()
        val all = cases(doc, "cases")
        for (c in all) {
            val salt = c["salt"] as String
            val id = c["install_id"] as String
            val percent = (c["percent"] as Number).toDouble()
            val bucket = Trust.bucket(salt, id)
            val inside = Trust.inRollout(percent, salt, id)
            if (bucket.toLong() != c["bucket"] || inside != c["in_rollout"]) {
                wrong.add("$salt/$id at $percent%: bucket $bucket in=$inside, expected ${c["bucket"]} ${c["in_rollout"]}")
            }
        }
        assertEquals(emptyList<String>(), wrong)
        assertTrue(all.any { it["in_rollout"] == true } && all.any { it["in_rollout"] == false })
    }

    private fun decide(block: () -> Unit): String = try {
        block()
        "accept"
    } catch (e: Rejected) {
        e.reason
    }

    /** The updater's default LiteRT (checked against runtime.min_version) is the demo app's pin, in this repository. */
    @Test
    fun defaultRuntimeIsTheAppsLiteRtPin() {
        val catalog = File(dir.absoluteFile.parentFile.parentFile, "android_demo/gradle/libs.versions.toml")
        val pin = Regex("(?m)^litert = \"([^\"]+)\"").find(catalog.readText())?.groupValues?.get(1)
        assertEquals("litert in $catalog", pin, UpdaterConfig.LITERT_VERSION)
    }
}
