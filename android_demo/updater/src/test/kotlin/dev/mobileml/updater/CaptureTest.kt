package dev.mobileml.updater

import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.security.KeyPairGenerator
import java.security.spec.ECGenParameterSpec

/**
 * The capture queue and the aggregates upload against a loopback server: what is sent, with which headers, and
 * that only a 202 clears anything. The decisions shared with Python (draws, budgets, consent) are in VectorsTest.
 */
class CaptureTest {
    private val keyPair = KeyPairGenerator.getInstance("EC").also { it.initialize(ECGenParameterSpec("secp256r1")) }
        .generateKeyPair()
    private val tmp = java.nio.file.Files.createTempDirectory("updater-capture").toFile()
    private val server = LoopbackServer(keyPair, ByteArray(16), "{}".toByteArray())
    private var now = Manifest.parseTime("2026-11-23T10:00:00Z")
    private val queue = CaptureQueue(tmp) { now }
    private val installHash = Codec.sha256Hex("device-1".toByteArray(Charsets.UTF_8))

    @After
    fun stop() {
        server.close()
        tmp.deleteRecursively()
    }

    private fun config(url: String = server.url, telemetry: Boolean = true) =
        UpdaterConfig(url, "digits", "stable", Keys.toBase64(keyPair.public), File(tmp, "models"), "device-1", "1.0.0",
                      timeoutMillis = 3000, sendTelemetry = telemetry, telemetryToken = "t0ken-of-sixteen-chars")

    /** Consent, a policy that takes every inference, and [n] inferences queued. */
    private fun queued(n: Int, perDay: Long = 10000): List<String> {
        queue.setConsent(true)
        queue.noteManifest("digits", "stable", "device-1", CapturePolicy(1.0, perDay, true))
        return (0 until n).mapNotNull { queue.offer(doubleArrayOf(it.toDouble(), 16.0), "1.0.0", "3", 0.75) }
    }

    @Test
    fun theUsersAnswerLabelsTheQueuedSampleAndSurvivesARestart() {
        val ids = queued(2)
        assertEquals(2, ids.size)
        assertTrue(queue.label(ids[1], "8"))
        assertFalse(queue.label("0".repeat(32), "8"))
        val again = CaptureQueue(tmp) { now }.state()  // read back from capture.json
        assertEquals(listOf(null, "8"), again.queue.map { it.label })
        assertEquals(listOf(0.0, 16.0), again.queue[0].input.toList())
        assertEquals(installHash, again.installIdHash)
        assertTrue(again.consent && again.policy?.on == true)
    }

    @Test
    fun aDamagedStateFileIsNoConsentAndNoQueue() {
        queued(3)
        File(tmp, CaptureQueue.FILE).writeText("{\"schema\": \"mobile_ml.capture_state\", \"schema_ver")
        val st = queue.state()
        assertFalse(st.consent)
        assertTrue(st.queue.isEmpty())
        assertNull(queue.offer(doubleArrayOf(1.0), "1.0.0", "3", 0.5))
    }

    @Test
    fun withoutConsentNothingIsQueuedAndRevokingDeletesTheQueue() {
        queue.noteManifest("digits", "stable", "device-1", CapturePolicy(1.0, 10, true))
        assertNull(queue.offer(doubleArrayOf(1.0), "1.0.0", "3", 0.5))
        queued(3)
        assertEquals(3, queue.state().queue.size)
        queue.setConsent(false)
        assertTrue(queue.state().queue.isEmpty())
        assertEquals(0, queue.upload(config()))
        assertTrue(server.posts.isEmpty())
    }

    @Test
    fun theQueueGoesUpInBatchesAndOnlyA202ClearsOne() {
        queued(150)
        assertEquals(listOf(100, 50), queue.batches().map { it.size })
        server.postStatus = 200  // a 2xx that is not "stored": only 202 is
        assertEquals(0, queue.upload(config()))
        assertEquals(150, queue.state().queue.size)
        assertEquals(1, server.posts.size)  // the first refusal ends the upload: the rest waits with it
        server.postStatus = 202
        assertEquals(150, queue.upload(config()))
        assertTrue(queue.state().queue.isEmpty())
        val batch = Json.parseObject(server.posts.last().body)
        assertEquals("mobile_ml.capture_batch", batch["schema"])
        assertEquals(installHash, batch["install_id_hash"])
        assertEquals(true, batch["consent"])
        val sample = (batch["samples"] as List<*>)[0] as Map<*, *>
        assertEquals(listOf("sample_id", "time", "version", "input", "prediction", "confidence", "label"),
                     sample.keys.toList())
        assertEquals("2026-11-23T10:00:00Z", sample["time"])
        assertEquals("/v1/capture", server.posts.last().path)
        assertEquals("Bearer t0ken-of-sixteen-chars", server.posts.last().headers["authorization"])
    }

    @Test
    fun aServerThatIsGoneKeepsTheQueueAndThrowsNothing() {
        queued(4)
        val gone = config("http://127.0.0.1:9/")  // discard port: nothing listens
        assertEquals(0, queue.upload(gone))
        assertEquals(4, queue.state().queue.size)
    }

    // -- aggregates: snapshot, POST /v1/aggregates with X-Install-Id-Hash, acknowledge on 202 only

    private val baseline = Baseline.parse(("""{"schema": "mobile_ml.baseline", "schema_version": 1, "kind": "tabular",
        "labels": ["no", "yes"], "train_rows": 2, "test_rows": 2,
        "features": [{"name": "x", "edges": [0.0], "train": [1, 1], "test": [1, 1], "discrete": false}],
        "predictions": [1, 1], "confidence_edges": [0.9], "confidence": [1, 1],
        "latency_edges_ms": [1.0], "image_channels": null}""").toByteArray())

    @Test
    fun aggregatesAreAcknowledgedOnlyOnceTheServerAnswered202() {
        val agg = Aggregator(baseline, "digits", "1.0.0", "stable") { now }
        val saved = ArrayList<String>()
        val upload = AggregatesUpload(config())
        assertEquals(AggregatesUpload.Outcome.NOTHING, upload.upload(agg) { saved.add(it) }.outcome)
        agg.observe(doubleArrayOf(1.0), doubleArrayOf(0.2, 0.8), 3.0)
        server.postStatus = 200  // only 202 means stored
        val kept = upload.upload(agg) { saved.add(it) }
        assertEquals(AggregatesUpload.Outcome.KEPT, kept.outcome)
        val id = agg.pending?.snapshotId
        assertNotNull(id)
        assertTrue(saved.last().contains(id!!))  // persisted before it was sent
        agg.observe(doubleArrayOf(-1.0), doubleArrayOf(0.9, 0.1), 0.5)  // into the new window
        server.postStatus = 202
        val done = upload.upload(agg) { saved.add(it) }
        assertEquals(AggregatesUpload.Outcome.UPLOADED, done.outcome)
        assertEquals(1L, done.observations)
        assertNull(agg.pending)
        assertEquals(1L, agg.toAggregates().count)  // the inference counted meanwhile waits for the next upload
        val posts = server.posts.filter { it.path == "/v1/aggregates" }
        assertEquals(2, posts.size)
        assertEquals(Json.parse(String(posts[0].body)), Json.parse(String(posts[1].body)))  // the same snapshot again
        assertEquals(id, Json.parseObject(posts[1].body)["snapshot_id"])
        assertEquals(installHash, posts[1].headers["x-install-id-hash"])
        assertEquals("Bearer t0ken-of-sixteen-chars", posts[1].headers["authorization"])
        assertFalse(saved.last().contains(id))
    }

    @Test
    fun aggregatesStayOnTheDeviceWithTelemetryOffOrTheServerGone() {
        val agg = Aggregator(baseline, "digits", "1.0.0", "stable") { now }
        agg.observe(doubleArrayOf(1.0), doubleArrayOf(0.2, 0.8), 3.0)
        assertEquals(AggregatesUpload.Outcome.OFF, AggregatesUpload(config(telemetry = false)).upload(agg) {}.outcome)
        assertNull(agg.pending)
        assertEquals(AggregatesUpload.Outcome.KEPT, AggregatesUpload(config("http://127.0.0.1:9/")).upload(agg) {}.outcome)
        assertNotNull(agg.pending)
        assertTrue(server.posts.isEmpty())
    }
}
