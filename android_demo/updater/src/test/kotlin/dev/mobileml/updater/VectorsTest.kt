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

    // -- monitoring: tests/vectors/aggregates/ (make_aggregate_vectors.py), replayed by tests/test_monitor_vectors.py

    private fun number(v: Any?): Double = when (v) {
        "nan" -> Double.NaN
        "inf" -> Double.POSITIVE_INFINITY
        "-inf" -> Double.NEGATIVE_INFINITY
        is Long -> v.toDouble()
        else -> v as Double
    }

    private fun doubles(v: Any?): DoubleArray = (v as List<*>).map { number(it) }.toDoubleArray()

    /** Every value at, just below and just above each edge, ±0, ±inf and NaN falls in Python's bin. */
    @Test
    fun everyValueFallsInTheBinPythonChose() {
        val wrong = ArrayList<String>()
        val all = cases(load("aggregates/bins.json"), "cases")
        for (c in all) {
            val edges = doubles(c["edges"])
            val values = doubles(c["values"])
            val bins = (c["bins"] as List<*>).map { (it as Long?)?.toInt() ?: -1 }
            for (i in values.indices) {
                val got = Bins.index(edges, values[i])
                if (got != bins[i]) wrong.add("${c["name"]}: ${values[i]} → bin $got, Python says ${bins[i]}")
            }
        }
        assertEquals(emptyList<String>(), wrong)
        assertTrue(all.size >= 20 && all.any { it["discrete"] == true } && all.any { it["discrete"] == false })
    }

    /** The same inferences give the same document as Python's Aggregator, and merging two devices the same sum. */
    @Test
    fun aggregatesAndTheirMergeAreThePythonOnes() {
        for (kind in listOf("tabular", "image")) {
            val doc = load("aggregates/$kind.json")
            val baseline = Baseline.parse(Json.write(doc["baseline"]).toByteArray())
            assertEquals(kind, baseline.kind)
            val devices = cases(doc, "devices")
            val got = devices.map { device ->
                val expect = device["expect"] as Map<*, *>
                var tick = Manifest.parseTime(expect["window_start"] as String) - 1000
                val agg = Aggregator(baseline, "vectors", "1.0.0", "stable") { tick += 1000; tick }
                for (o in cases(device, "observations")) {
                    agg.observe(doubles(o["input"]), doubles(o["probs"]), number(o["latency_ms"]))
                }
                assertEquals("$kind counts", expect, Json.parse(agg.toAggregates().toJson()))
                Aggregates.fromMap(expect)
            }
            val merged = Aggregates.merge(got[0], got[1])
            assertEquals("$kind merge", doc["merged"], Json.parse(merged.toJson()))
            assertEquals("$kind merge commutes", merged.toJson(), Aggregates.merge(got[1], got[0]).toJson())
        }
    }

    /** Image summaries (mean intensity, contrast per channel) are bit-identical to numpy's on integer pixels. */
    @Test
    fun imageSummariesArePythonsExactly() {
        val doc = load("aggregates/image.json")
        val first = cases(cases(doc, "devices")[0], "observations")
        val summaries = doc["summaries"] as List<*>
        assertTrue(summaries.size == 3)
        for ((i, expect) in summaries.withIndex()) {
            val got = Bins.imageSummaries(doubles(first[i]["input"]), 2)
            assertTrue("image $i", doubles(expect).contentEquals(got))
        }
    }

    // -- capture: tests/vectors/capture.json (make_capture_vectors.py), checked by tests/test_capture_vectors.py

    /** Every draw is Python's to the last bit, near 0 and 1 too, where a rounding slip would flip a decision. */
    @Test
    fun everyCaptureDrawIsPythonsExactly() {
        val doc = load("capture.json")
        val wrong = ArrayList<String>()
        var count = 0
        for (c in cases(doc, "draws")) {
            val hash = c["install_id_hash"] as String
            assertEquals(hash, Codec.sha256Hex((c["install_id"] as String).toByteArray(Charsets.UTF_8)))
            val ns = c["n"] as List<*>
            val us = doubles(c["u"])
            for (i in ns.indices) {
                val got = CaptureQueue.draw(hash, ns[i] as Long)
                if (got != us[i]) wrong.add("$hash/${ns[i]}: $got, Python ${us[i]}")
                count++
            }
        }
        assertEquals("${wrong.size} of $count draws differ", emptyList<String>(), wrong.take(10))
        assertTrue(count > 1000)
    }

    /** Consent, manifests and inferences replayed: the same samples taken, the same state after every step. */
    @Test
    fun everyCaptureSessionTakesThePythonSamples() {
        val doc = load("capture.json")
        assertEquals(doc["max_queue"], CaptureQueue.MAX_QUEUE.toLong())
        for (session in cases(doc, "sessions")) {
            val dir = java.nio.file.Files.createTempDirectory("capture-vectors").toFile()
            try {
                var now = Manifest.parseTime(session["start"] as String)
                val queue = CaptureQueue(dir) { now }
                for ((i, step) in cases(session, "steps").withIndex()) {
                    val chosen = ArrayList<Boolean>()
                    when (step["op"]) {
                        "consent" -> queue.setConsent(step["value"] as Boolean)
                        "manifest" -> {
                            val p = step["policy"] as Map<*, *>?
                            val policy = p?.let { CapturePolicy(number(it["rate"]), it["max_per_day"] as Long, true) }
                            queue.noteManifest(step["model"] as String, step["channel"] as String,
                                               session["install_id"] as String, policy)
                        }
                        else -> repeat((step["count"] as Long).toInt()) {
                            now += (step["every"] as Long) * 60000
                            chosen.add(queue.offer(doubleArrayOf(1.0, 2.0), "1.0.0", "a", 0.5) != null)
                        }
                    }
                    val where = "${session["name"]} step $i (${step["op"]})"
                    assertEquals(where, step["chosen"], chosen)
                    val st = queue.state()
                    val expect = step["expect"] as Map<*, *>
                    assertEquals(where, expect, mapOf("queue" to st.queue.size.toLong(), "inferences" to st.inferences,
                                                      "day" to st.day, "taken_today" to st.takenToday))
                }
            } finally {
                dir.deleteRecursively()
            }
        }
    }
}
