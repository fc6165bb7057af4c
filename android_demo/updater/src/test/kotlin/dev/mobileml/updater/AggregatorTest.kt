package dev.mobileml.updater

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.util.Random

/**
 * The device-side aggregator on its own: the bin rule at its ends, the upload protocol (snapshot, acknowledge,
 * nothing lost in between), the state file, merge algebra and strict reading. The cases shared with Python are in
 * VectorsTest (tests/vectors/aggregates/).
 */
class AggregatorTest {
    private val baselineJson = """{"schema": "mobile_ml.baseline", "schema_version": 1, "kind": "tabular",
        "labels": ["no", "yes"], "train_rows": 4, "test_rows": 4,
        "features": [{"name": "x", "edges": [0.0, 1.0], "train": [1, 2, 1], "test": [1, 2, 1], "discrete": false},
                     {"name": "y", "edges": [5.5], "train": [2, 2], "test": [2, 2], "discrete": false}],
        "predictions": [2, 2], "confidence_edges": [0.5, 0.9], "confidence": [0, 2, 2],
        "latency_edges_ms": [1.0, 10.0], "image_channels": null}"""
    private val baseline = Baseline.parse(baselineJson.toByteArray())
    private var now = Manifest.parseTime("2026-11-23T00:00:00Z")
    private fun aggregator() = Aggregator(baseline, "digits", "1.0.0", "stable") { now }

    @Test
    fun binsAreLeftClosedAndOpenAtBothEnds() {
        val edges = doubleArrayOf(0.0, 1.0)
        val cases = listOf(Double.NEGATIVE_INFINITY to 0, -1e-300 to 0, -0.0 to 1, 0.0 to 1, Math.nextDown(1.0) to 1,
                           1.0 to 2, 1e300 to 2, Double.POSITIVE_INFINITY to 2, Double.NaN to -1)
        for ((value, bin) in cases) assertEquals("value $value", bin, Bins.index(edges, value))
        assertEquals(0, Bins.index(DoubleArray(0), 3.0))
    }

    @Test
    fun observeCountsEveryHistogramAndNanAsMissing() {
        val agg = aggregator()
        agg.observe(doubleArrayOf(0.5, 9.0), doubleArrayOf(0.2, 0.8), 3.0)
        agg.observe(doubleArrayOf(Double.NaN, 1.0), doubleArrayOf(0.5, 0.5), 0.0)  // a tie: the first class
        val doc = agg.toAggregates()
        assertEquals(2L, doc.count)
        assertEquals(listOf(0L, 1L, 0L), doc.features[0].counts.toList())
        assertEquals(1L, doc.features[0].missing)
        assertEquals(listOf(1L, 1L), doc.features[1].counts.toList())
        assertEquals(listOf(1L, 1L), doc.predictions.toList())
        assertEquals(listOf(0L, 2L, 0L), doc.confidence.toList())  // 0.5 is the first edge: bin 1
        assertEquals(listOf(1L, 1L, 0L), doc.latencyMs.toList())
        for (bad in listOf<() -> Unit>({ agg.observe(doubleArrayOf(1.0), doubleArrayOf(0.5, 0.5), 1.0) },
                                       { agg.observe(doubleArrayOf(1.0, 2.0), doubleArrayOf(Double.NaN, 0.5), 1.0) },
                                       { agg.observe(doubleArrayOf(1.0, 2.0), doubleArrayOf(0.5, 0.5), -1.0) })) {
            try { bad(); fail("accepted a bad observation") } catch (e: IllegalArgumentException) {}
        }
        assertEquals(2L, agg.toAggregates().count)
    }

    @Test
    fun countsObservedBetweenSnapshotAndAcknowledgeAreKept() {
        val agg = aggregator()
        assertNull("nothing counted, nothing to upload", agg.snapshot())
        repeat(3) { agg.observe(doubleArrayOf(0.5, 1.0), doubleArrayOf(0.1, 0.9), 2.0) }
        now += 60_000
        val first = agg.snapshot()!!
        assertEquals(3L, first.count)
        assertEquals(first.windowStart + 60_000, first.windowEnd)
        repeat(2) { agg.observe(doubleArrayOf(0.5, 1.0), doubleArrayOf(0.1, 0.9), 2.0) }
        assertEquals("a retry sends the same snapshot", first.toJson(), agg.snapshot()!!.toJson())
        agg.acknowledge("0".repeat(32))  // another id: nothing happens
        assertNotNull(agg.pending)
        agg.acknowledge(first.snapshotId!!)
        assertNull(agg.pending)
        val second = agg.snapshot()!!
        assertEquals(2L, second.count)
        assertEquals(first.windowEnd, second.windowStart)
        assertTrue(second.snapshotId != first.snapshotId)
    }

    @Test
    fun theStateFileKeepsTheOpenWindowAndThePendingSnapshot() {
        val agg = aggregator()
        agg.observe(doubleArrayOf(-1.0, 9.0), doubleArrayOf(0.7, 0.3), 50.0)
        val pending = agg.snapshot()!!
        agg.observe(doubleArrayOf(2.0, 0.0), doubleArrayOf(0.3, 0.7), 5.0)
        val back = Aggregator.restore(baseline, "digits", "1.0.0", "stable", agg.stateJson().toByteArray()) { now }
        assertEquals(pending.toJson(), back.pending!!.toJson())
        assertEquals(agg.toAggregates().toJson(), back.toAggregates().toJson())
        assertEquals(agg.stateJson(), back.stateJson())
        for (other in listOf(listOf("other", "1.0.0", "stable"), listOf("digits", "1.0.1", "stable"))) {
            try {
                Aggregator.restore(baseline, other[0], other[1], other[2], agg.stateJson().toByteArray())
                fail("restored the state of another model version: $other")
            } catch (e: Rejected) {}
        }
    }

    private fun randomDoc(random: Random, start: Long): Aggregates {
        val agg = Aggregator(baseline, "digits", "1.0.0", "stable") { start + random.nextInt(3600) * 1000L }
        repeat(random.nextInt(20)) {
            val p = random.nextDouble()
            agg.observe(doubleArrayOf(random.nextGaussian(), random.nextGaussian() * 5), doubleArrayOf(p, 1 - p),
                        random.nextDouble() * 20)
        }
        return agg.toAggregates()
    }

    @Test
    fun mergeIsAssociativeAndCommutative() {
        val random = Random(15)
        repeat(50) {
            val (a, b, c) = List(3) { randomDoc(random, now + random.nextInt(86400) * 1000L) }
            val left = Aggregates.merge(Aggregates.merge(a, b), c).toJson()
            assertEquals(left, Aggregates.merge(a, Aggregates.merge(b, c)).toJson())
            assertEquals(left, Aggregates.merge(c, Aggregates.merge(b, a)).toJson())
            assertEquals(a.count + b.count + c.count, Aggregates.fromMap(Json.parse(left)).count)
        }
    }

    @Test
    fun strictReadingRefusesInconsistentDocuments() {
        val agg = aggregator()
        agg.observe(doubleArrayOf(0.5, 9.0), doubleArrayOf(0.2, 0.8), 3.0)
        @Suppress("UNCHECKED_CAST")
        val good = Json.parse(agg.toAggregates().toJson()) as Map<String, Any?>
        Aggregates.fromMap(good)
        val bad = listOf(
            good + mapOf("count" to 2L),
            good + mapOf("predictions" to listOf(1L, 1L)),
            good + mapOf("extra" to 1L),
            good + mapOf("window_end" to "2026-11-22T00:00:00Z"),
            good + mapOf("latency_ms" to listOf(1.5, 0L, 0L)))
        for (doc in bad) {
            try { Aggregates.fromMap(doc); fail("accepted $doc") } catch (e: Rejected) {}
        }
        val unsorted = baselineJson.replace("[0.0, 1.0]", "[1.0, 0.0]")
        for (text in listOf(unsorted, baselineJson.replace("mobile_ml.baseline", "mobile_ml.other"), "{")) {
            try { Baseline.parse(text.toByteArray()); fail("accepted a bad baseline") } catch (e: Rejected) {}
        }
    }
}
