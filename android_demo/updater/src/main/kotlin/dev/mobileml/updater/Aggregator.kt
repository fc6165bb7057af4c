package dev.mobileml.updater

import java.security.SecureRandom

/**
 * Monitoring on the device, counts only: the Kotlin twin of `mobile_ml/monitor/aggregate.py` and `bins.py`.
 * Each inference adds one to a bin of every histogram of a `mobile_ml.aggregates` document (per monitored
 * feature, predicted class, top-1 confidence, latency), against the bins of the model's `baseline.json`.
 * `tests/vectors/aggregates/` holds cases Python and this file must count identically (VectorsTest).
 *
 * The bin rule ([Bins.index]): edges are strictly increasing finite cut points; a value falls in bin i = the number
 * of edges <= value. Bins are left-closed, right-open [e[i-1], e[i]); bin 0 is open below (-inf included), the
 * last bin open above (+inf included); NaN has no bin and is counted as `missing`.
 */
object Bins {
    /** The bin of [value] under the rule above, or -1 for NaN. */
    fun index(edges: DoubleArray, value: Double): Int {
        if (value.isNaN()) return -1
        var lo = 0
        var hi = edges.size
        while (lo < hi) {  // the first edge > value: Python's bisect_right
            val mid = (lo + hi) ushr 1
            if (edges[mid] <= value) lo = mid + 1 else hi = mid
        }
        return lo
    }

    /** Mean intensity then contrast (population standard deviation) of each channel of one image, channels last
     *  (HWC, interleaved), in raw pixel units: two passes in doubles, as Python computes it. */
    fun imageSummaries(pixels: DoubleArray, channels: Int): DoubleArray {
        require(channels > 0 && pixels.isNotEmpty() && pixels.size % channels == 0) {
            "an image must have a multiple of $channels values, got ${pixels.size}"
        }
        val n = pixels.size / channels
        val out = DoubleArray(2 * channels)
        for (c in 0 until channels) {
            var sum = 0.0
            for (i in 0 until n) sum += pixels[i * channels + c]
            val mean = sum / n
            var squares = 0.0
            for (i in 0 until n) {
                val d = pixels[i * channels + c] - mean
                squares += d * d
            }
            out[c] = mean
            out[channels + c] = Math.sqrt(squares / n)
        }
        return out
    }

    /** The predicted class: the first of equal maxima. */
    fun top1(probs: DoubleArray): Int {
        var best = 0
        for (i in 1 until probs.size) if (probs[i] > probs[best]) best = i
        return best
    }
}

/** The parts of `baseline.json` a device counts against (the train and test counts stay on the server). */
class Baseline(
    val kind: String,
    val labels: List<String>,
    val featureNames: List<String>,
    val featureEdges: List<DoubleArray>,
    val confidenceEdges: DoubleArray,
    val latencyEdgesMs: DoubleArray,
    val imageChannels: Int?
) {
    companion object {
        const val MAX_FEATURES = 256  // as mobile_ml/contracts/baseline.py
        const val MAX_BINS = 64
        const val MAX_CLASSES = 1000

        /** Read strictly: a file that is not a version-1 baseline, or whose edges do not increase, is Rejected. */
        fun parse(bytes: ByteArray): Baseline {
            val raw = try { Json.parseObject(bytes) } catch (e: Json.ParseError) {
                throw Rejected("malformed", "baseline.json: ${e.message}")
            }
            val f = Fields(raw, "")
            if (f.string("schema") != "mobile_ml.baseline") throw f.error("schema", "not a mobile-ml baseline")
            f.integer("schema_version", 1, 1)
            val kind = f.string("kind", Regex("tabular|image"))
            val labels = strings(f, "labels", MAX_CLASSES)
            val names = ArrayList<String>()
            val edges = f.eachObj("features", MAX_FEATURES) { x ->
                names.add(x.string("name", null, 256))
                numbers(x, "edges", MAX_BINS - 1, increasing = true)
            }
            val channels = if (raw["image_channels"] == null) null else f.integer("image_channels", 1, 4).toInt()
            val baseline = Baseline(kind, labels, names, edges, numbers(f, "confidence_edges", MAX_BINS - 1, true),
                                    numbers(f, "latency_edges_ms", MAX_BINS - 1, true), channels)
            if (labels.size < 2 || names.isEmpty() || names.toSet().size != names.size) {
                throw f.error("features", "a baseline needs two labels and distinct features")
            }
            if ((kind == "image") != (channels != null) || (channels != null && names != imageFeatureNames(channels))) {
                throw f.error("features", "an image baseline monitors the summaries of its image_channels")
            }
            return baseline
        }

        fun imageFeatureNames(channels: Int): List<String> =
            (0 until channels).map { "mean_intensity[$it]" } + (0 until channels).map { "contrast[$it]" }

        internal fun numbers(f: Fields, key: String, maxLen: Int, increasing: Boolean): DoubleArray {
            val list = f.value(key) as? List<*> ?: throw f.error(key, "expected a list, got ${Fields.kind(f.raw[key])}")
            if (list.size > maxLen) throw f.error(key, "more than $maxLen items")
            val out = DoubleArray(list.size)
            for ((i, v) in list.withIndex()) {
                out[i] = Fields(mapOf("" to v), "${f.where}.$key[$i]".trimStart('.')).number("", -Double.MAX_VALUE,
                                                                                           Double.MAX_VALUE)
                if (increasing && i > 0 && out[i] <= out[i - 1]) throw f.error(key, "bin edges must be strictly increasing")
            }
            return out
        }

        internal fun strings(f: Fields, key: String, maxLen: Int): List<String> {
            val list = f.value(key) as? List<*> ?: throw f.error(key, "expected a list, got ${Fields.kind(f.raw[key])}")
            if (list.size > maxLen) throw f.error(key, "more than $maxLen items")
            return list.mapIndexed { i, v -> v as? String ?: throw f.error("$key[$i]", "expected a string") }
        }
    }
}

class FeatureCounts(val name: String, val counts: LongArray, val missing: Long)

/** One window of counts (`mobile_ml.aggregates` version 1), immutable. Times in milliseconds since the epoch. */
class Aggregates(
    val model: String,
    val version: String,
    val channel: String,
    val windowStart: Long,
    val windowEnd: Long,
    val count: Long,
    val features: List<FeatureCounts>,
    val predictions: LongArray,
    val confidence: LongArray,
    val latencyMs: LongArray,
    val snapshotId: String? = null
) {
    fun toMap(): Map<String, Any?> = linkedMapOf(
        "schema" to SCHEMA, "schema_version" to 1L, "model" to model, "version" to version, "channel" to channel,
        "window_start" to Manifest.formatTime(windowStart), "window_end" to Manifest.formatTime(windowEnd),
        "count" to count,
        "features" to features.map { linkedMapOf("name" to it.name, "counts" to it.counts.toList(), "missing" to it.missing) },
        "predictions" to predictions.toList(), "confidence" to confidence.toList(), "latency_ms" to latencyMs.toList(),
        "snapshot_id" to snapshotId
    )

    /** The JSON to upload (`POST /v1/aggregates`) or keep. */
    fun toJson(): String = Json.write(toMap())

    private fun shape(): List<Any> =
        listOf(features.map { it.name to it.counts.size }, predictions.size, confidence.size, latencyMs.size)

    companion object {
        const val SCHEMA = "mobile_ml.aggregates"
        private const val MAX_COUNT = 9007199254740991L  // 2^53 - 1, as Python
        private val SNAPSHOT_ID = Regex("[0-9a-f]{32}")

        /** The counts of both documents (same model, version, channel and bins); the window spans both.
         *  Associative and commutative, as Python's `merge`. */
        fun merge(a: Aggregates, b: Aggregates): Aggregates {
            require(a.model == b.model && a.version == b.version && a.channel == b.channel) {
                "cannot merge aggregates of ${a.model} ${a.version} (${a.channel}) and ${b.model} ${b.version} (${b.channel})"
            }
            require(a.shape() == b.shape()) { "cannot merge aggregates with different features or bins" }
            return Aggregates(
                a.model, a.version, a.channel, minOf(a.windowStart, b.windowStart), maxOf(a.windowEnd, b.windowEnd),
                a.count + b.count,
                a.features.zip(b.features).map { (x, y) -> FeatureCounts(x.name, add(x.counts, y.counts), x.missing + y.missing) },
                add(a.predictions, b.predictions), add(a.confidence, b.confidence), add(a.latencyMs, b.latencyMs)
            )
        }

        private fun add(x: LongArray, y: LongArray) = LongArray(x.size) { x[it] + y[it] }

        /** Read a document strictly, as `mobile_ml.contracts.aggregates` does: every histogram sums to count. */
        fun fromMap(raw: Any?, where: String = "", header: Boolean = true): Aggregates {
            val f = Fields(raw, where)
            if (header) {  // a document on its own; nested in an aggregator state it has no header
                if (f.string("schema") != SCHEMA) throw f.error("schema", "not a mobile-ml aggregates document")
                f.integer("schema_version", 1, 1)
            }
            val count = f.integer("count", 0, MAX_COUNT)
            val features = f.eachObj("features", Baseline.MAX_FEATURES) { x ->
                val fc = FeatureCounts(x.string("name", null, 256), counts(x, "counts", count, Baseline.MAX_BINS, exact = false),
                                       x.integer("missing", 0, MAX_COUNT))
                x.done()
                if (fc.counts.isEmpty() || fc.counts.sum() + fc.missing != count) {
                    throw x.error("counts", "the counts and missing do not add up to $count")
                }
                fc
            }
            val doc = Aggregates(
                f.string("model", Manifest.NAME, 64), f.string("version", Semver.PATTERN, 64),
                f.string("channel", Manifest.NAME, 64), Manifest.readTime(f, "window_start"), Manifest.readTime(f, "window_end"),
                count, features, counts(f, "predictions", count, Baseline.MAX_CLASSES),
                counts(f, "confidence", count, Baseline.MAX_BINS), counts(f, "latency_ms", count, Baseline.MAX_BINS), f.optString("snapshot_id", SNAPSHOT_ID, 32)
            )
            f.done()
            if (doc.windowEnd < doc.windowStart) throw f.error("window_end", "the window ends before it starts")
            if (features.isEmpty() || features.map { it.name }.toSet().size != features.size) {
                throw f.error("features", "expected distinct features")
            }
            return doc
        }

        private fun counts(f: Fields, key: String, total: Long, maxLen: Int, exact: Boolean = true): LongArray {
            val list = f.value(key) as? List<*> ?: throw f.error(key, "expected a list, got ${Fields.kind(f.raw[key])}")
            if (list.size > maxLen || list.isEmpty()) throw f.error(key, "expected 1 to $maxLen counts")
            val out = LongArray(list.size) { Fields(mapOf("" to list[it]), "${f.where}.$key[$it]").integer("", 0, MAX_COUNT) }
            if (exact && out.sum() != total) throw f.error(key, "the counts add up to ${out.sum()}, not $total")
            return out
        }
    }
}

/**
 * The counts of one model version against its [baseline], and the two-phase upload of Python's `Aggregator`:
 * [snapshot] closes the open window into a pending snapshot with an id (observations go on into a new window);
 * [acknowledge] forgets it once the server stored it; until then [snapshot] returns the same one again.
 * [stateJson] / [restore] keep both across restarts (write the file atomically: temp file, then rename).
 */
class Aggregator(
    val baseline: Baseline,
    val model: String,
    val version: String,
    val channel: String,
    private val clock: () -> Long = { System.currentTimeMillis() }
) {
    private var windowStart = seconds(clock())
    private var windowEnd = windowStart
    private var count = 0L
    private val features = baseline.featureEdges.map { LongArray(it.size + 1) }
    private val missing = LongArray(baseline.featureNames.size)
    private val predictions = LongArray(baseline.labels.size)
    private val confidence = LongArray(baseline.confidenceEdges.size + 1)
    private val latency = LongArray(baseline.latencyEdgesMs.size + 1)
    var pending: Aggregates? = null
        private set

    /** Count one inference: the model input (raw units; an image HWC, channels last), probabilities, latency. */
    fun observe(input: FloatArray, probs: FloatArray, latencyMs: Double) =
        observe(DoubleArray(input.size) { input[it].toDouble() }, DoubleArray(probs.size) { probs[it].toDouble() }, latencyMs)

    fun observe(input: DoubleArray, probs: DoubleArray, latencyMs: Double) {
        val channels = baseline.imageChannels
        val values = if (channels != null) Bins.imageSummaries(input, channels) else input
        require(values.size == features.size) { "an input must have ${features.size} features, got ${values.size}" }
        require(probs.size == predictions.size && probs.all { !it.isNaN() && !it.isInfinite() }) {
            "probabilities must be ${predictions.size} finite numbers"
        }
        require(!latencyMs.isNaN() && !latencyMs.isInfinite() && latencyMs >= 0) { "latency must be finite and >= 0" }
        val best = Bins.top1(probs)
        count++
        for (j in values.indices) {
            val bin = Bins.index(baseline.featureEdges[j], values[j])
            if (bin < 0) missing[j]++ else features[j][bin]++
        }
        predictions[best]++
        confidence[Bins.index(baseline.confidenceEdges, probs[best])]++
        latency[Bins.index(baseline.latencyEdgesMs, latencyMs)]++
        windowEnd = maxOf(windowEnd, seconds(clock()))
    }

    /** The open window's counts (a pending snapshot is not in them). */
    fun toAggregates(): Aggregates = Aggregates(
        model, version, channel, windowStart, windowEnd, count,
        baseline.featureNames.indices.map { FeatureCounts(baseline.featureNames[it], features[it].copyOf(), missing[it]) },
        predictions.copyOf(), confidence.copyOf(), latency.copyOf()
    )

    /** The document to upload, or null when nothing was counted; persist [stateJson] before sending it. */
    fun snapshot(): Aggregates? {
        pending?.let { return it }
        if (count == 0L) return null
        val now = maxOf(seconds(clock()), windowEnd)
        val id = ByteArray(16).also { random.nextBytes(it) }.joinToString("") { "%02x".format(it.toInt() and 0xff) }
        val open = toAggregates()
        pending = Aggregates(model, version, channel, open.windowStart, now, open.count, open.features, open.predictions,
                             open.confidence, open.latencyMs, id)
        reset(now)
        return pending
    }

    /** The server stored snapshot [snapshotId]: forget it (any other id changes nothing). */
    fun acknowledge(snapshotId: String) {
        if (pending?.snapshotId == snapshotId) pending = null
    }

    /** `mobile_ml.aggregator_state`: the open window and the pending snapshot. */
    fun stateJson(): String = Json.write(linkedMapOf(
        "schema" to "mobile_ml.aggregator_state", "schema_version" to 1L,
        "current" to toAggregates().toMap().filterKeys { it != "schema" && it != "schema_version" },
        "pending" to pending?.toMap()?.filterKeys { it != "schema" && it != "schema_version" }
    ))

    private fun reset(start: Long) {
        windowStart = start
        windowEnd = start
        count = 0
        for (bins in features) bins.fill(0)
        for (counts in listOf(missing, predictions, confidence, latency)) counts.fill(0)
    }

    private fun load(doc: Aggregates) {
        val shape = listOf(features.map { it.size }, predictions.size, confidence.size, latency.size)
        val got = listOf(doc.features.map { it.counts.size }, doc.predictions.size, doc.confidence.size, doc.latencyMs.size)
        if (doc.model != model || doc.version != version || doc.channel != channel || got != shape ||
            doc.features.map { it.name } != baseline.featureNames) {
            throw Rejected("malformed", "the aggregates state is for another model, version or baseline")
        }
        windowStart = doc.windowStart
        windowEnd = doc.windowEnd
        count = doc.count
        for ((j, fc) in doc.features.withIndex()) { fc.counts.copyInto(features[j]); missing[j] = fc.missing }
        doc.predictions.copyInto(predictions)
        doc.confidence.copyInto(confidence)
        doc.latencyMs.copyInto(latency)
    }

    companion object {
        private val random = SecureRandom()

        private fun seconds(millis: Long) = millis / 1000 * 1000  // the documents keep whole seconds

        /** The aggregator kept in [state] (from [stateJson]); Rejected when it does not fit [baseline]. */
        fun restore(baseline: Baseline, model: String, version: String, channel: String, state: ByteArray,
                    clock: () -> Long = { System.currentTimeMillis() }): Aggregator {
            val raw = try { Json.parseObject(state) } catch (e: Json.ParseError) {
                throw Rejected("malformed", "aggregates state: ${e.message}")
            }
            val f = Fields(raw, "")
            if (f.string("schema") != "mobile_ml.aggregator_state") throw f.error("schema", "not an aggregator state")
            f.integer("schema_version", 1, 1)
            fun doc(key: String): Aggregates? {
                val m = f.value(key, optional = key == "pending") ?: return null
                return Aggregates.fromMap(m, key, header = false)
            }
            val current = doc("current") ?: throw f.error("current", "missing")
            val pending = doc("pending")
            f.done()
            val agg = Aggregator(baseline, model, version, channel, clock)
            agg.load(current)
            if (pending != null) {
                if (pending.snapshotId == null) throw f.error("pending.snapshot_id", "missing")
                agg.load(pending)  // checks that it fits, then the open window goes back in
                agg.load(current)
                agg.pending = pending
            }
            return agg
        }
    }
}
