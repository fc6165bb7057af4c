package dev.mobileml.demo.ml

// The input/output math between a drawing and a model, driven by the model's metadata.json. This package (ml/) stays
// free of Android imports and in Kotlin that kotlinc 1.3 compiles: updater/test.sh builds and tests it on a bare JVM.

/** metadata.json lacks something the app needs, or says something it cannot do; the message names the key. */
class MetadataException(message: String) : IllegalArgumentException(message)

/** The tensor element types the app can feed and read (numpy names, as metadata.json writes them). */
enum class TensorType(val wire: String, val minValue: Int, val maxValue: Int) {
    FLOAT32("float32", 0, 0), INT8("int8", -128, 127), UINT8("uint8", 0, 255);

    val isInteger: Boolean get() = this != FLOAT32

    companion object {
        fun fromWire(dtype: String, where: String): TensorType =
            values().firstOrNull { it.wire == dtype }
                ?: throw MetadataException("$where.dtype is '$dtype'; the app handles float32, int8 and uint8")
    }
}

/** One input or output tensor as metadata.json describes it; integer tensors map real = scale × (q − zeroPoint). */
class TensorSpec(val name: String, val shape: List<Int>, val type: TensorType, val scale: Double?, val zeroPoint: Int) {
    val isQuantized: Boolean get() = type.isInteger

    /**
     * Real values → the tensor's integer type: q = round(x / scale) + zeroPoint, clamped to the type's range.
     * Rounds half to even (Math.rint), as numpy's round does in the exporter, so the app feeds the bytes the
     * export was evaluated with. A uint8 value is stored as its bit pattern in a (signed) byte.
     */
    fun quantize(values: FloatArray): ByteArray {
        val s = integerScale()
        return ByteArray(values.size) { i ->
            val q = Math.rint(values[i].toDouble() / s) + zeroPoint
            q.coerceIn(type.minValue.toDouble(), type.maxValue.toDouble()).toInt().toByte()
        }
    }

    /** Integer tensor bytes → real values: scale × (q − zeroPoint). */
    fun dequantize(raw: ByteArray): FloatArray {
        val s = integerScale()
        return FloatArray(raw.size) { i ->
            val q = if (type == TensorType.UINT8) raw[i].toInt() and 0xFF else raw[i].toInt()
            (s * (q - zeroPoint)).toFloat()
        }
    }

    private fun integerScale(): Double {
        if (!type.isInteger) throw IllegalStateException("$name is float32: nothing to (de)quantize")
        return scale ?: throw IllegalStateException("$name is ${type.wire} without a scale")
    }

    companion object {
        fun parse(tensor: Map<String, Any?>, where: String): TensorSpec {
            val type = TensorType.fromWire(Meta.string(tensor, "dtype", where), where)
            val scale = Meta.optDouble(tensor, "scale", where)
            if (type.isInteger && (scale == null || scale <= 0.0)) {
                // An integer tensor without quantization parameters has no real-valued meaning the app could feed.
                throw MetadataException("$where is ${type.wire} but has no positive scale")
            }
            val shape = Meta.list(tensor, "shape", where).mapIndexed { i, v -> Meta.toInt(v, "$where.shape[$i]") }
            val zeroPoint = if (type.isInteger) Meta.optDouble(tensor, "zero_point", where)?.toInt() ?: 0 else 0
            return TensorSpec(Meta.optString(tensor, "name") ?: where, shape, type, if (type.isInteger) scale else null,
                              zeroPoint)
        }
    }
}

/** An image input: H×W×C (NHWC), the raw pixel range the model expects, and its tensor. */
class InputSpec(val height: Int, val width: Int, val channels: Int, val low: Float, val high: Float,
                val tensor: TensorSpec) {
    /** Values in one input row: height × width × channels. */
    val size: Int get() = height * width * channels

    companion object {
        fun parse(metadata: Map<String, Any?>): InputSpec {
            val input = Meta.obj(metadata, "input", "metadata")
            val kind = Meta.string(input, "kind", "input")
            if (kind != "image") {
                throw MetadataException("the model takes $kind input; this demo only feeds drawn images")
            }
            val layout = Meta.optString(input, "layout") ?: "NHWC"
            if (layout != "NHWC") throw MetadataException("input.layout is '$layout'; the app writes NHWC")
            val h = Meta.int(input, "height", "input")
            val w = Meta.int(input, "width", "input")
            val c = Meta.int(input, "channels", "input")
            if (h <= 0 || w <= 0 || (c != 1 && c != 3)) {
                throw MetadataException("input is ${h}×${w}×$c; the app draws 1- or 3-channel images")
            }
            val range = Meta.list(input, "value_range", "input")
            if (range.size != 2) throw MetadataException("input.value_range must be [low, high]")
            val low = Meta.toDouble(range[0], "input.value_range[0]").toFloat()
            val high = Meta.toDouble(range[1], "input.value_range[1]").toFloat()
            val tensor = TensorSpec.parse(Meta.obj(input, "tensor", "input"), "input.tensor")
            // The tensor is [batch, H, W, C] (batch -1 when dynamic); anything else means the metadata is confused.
            val dims = tensor.shape
            if (dims.size != 4 || dims[1] != h || dims[2] != w || dims[3] != c) {
                throw MetadataException("input.tensor.shape is $dims, expected [batch, $h, $w, $c]")
            }
            return InputSpec(h, w, c, low, high, tensor)
        }
    }
}

/**
 * The per-feature normalization an app applies to a table row before quantizing: metadata.json's
 * `preprocessing.normalize` (`axis` "feature", one `mean` and one `std` per entry of `input.features`).
 *
 * Integer variants of tabular models carry it: their graph takes normalized features, because one int8 input scale
 * cannot fit raw features that differ by orders of magnitude. Computed in Float, as the exporter does in float32,
 * so the app feeds the exact values the export was evaluated with.
 */
class FeatureNormalization(val mean: FloatArray, val std: FloatArray) {
    init {
        if (mean.size != std.size || mean.isEmpty()) {
            throw MetadataException("preprocessing.normalize has ${mean.size} means and ${std.size} stds")
        }
    }

    /** (x − mean) / std for each feature of [row], in `input.features` order. */
    fun apply(row: FloatArray): FloatArray {
        if (row.size != mean.size) {
            throw IllegalArgumentException("the row has ${row.size} features; the model takes ${mean.size}")
        }
        return FloatArray(row.size) { i -> (row[i] - mean[i]) / std[i] }
    }

    companion object {
        /** The normalization metadata asks the app for, or null when the model normalizes itself (no key). */
        fun parse(metadata: Map<String, Any?>): FeatureNormalization? {
            if (metadata["preprocessing"] == null) return null
            val pre = Meta.obj(metadata, "preprocessing", "metadata")
            if (pre["normalize"] == null) return null
            val norm = Meta.obj(pre, "normalize", "preprocessing")
            val axis = Meta.string(norm, "axis", "preprocessing.normalize")
            if (axis != "feature") {
                throw MetadataException("preprocessing.normalize.axis is '$axis'; the app normalizes per feature")
            }
            val mean = floats(norm, "mean")
            val std = floats(norm, "std")
            for (i in std.indices) {
                if (!(std[i] > 0f)) throw MetadataException("preprocessing.normalize.std[$i] is not positive")
            }
            return FeatureNormalization(mean, std)
        }

        private fun floats(norm: Map<String, Any?>, key: String): FloatArray {
            val values = Meta.list(norm, key, "preprocessing.normalize")
            return FloatArray(values.size) { i -> Meta.toDouble(values[i], "preprocessing.normalize.$key[$i]").toFloat() }
        }
    }
}

/** A table input: encoded feature order, the normalization the app applies (null: the model does it), the tensor. */
class TabularSpec(val features: List<String>, val normalization: FeatureNormalization?, val tensor: TensorSpec) {
    /** An encoded row (numbers in [features] order) → the real values the input tensor takes. */
    fun toModelInput(row: FloatArray): FloatArray {
        if (row.size != features.size) {
            throw IllegalArgumentException("the row has ${row.size} features; the model takes ${features.size}")
        }
        return normalization?.apply(row) ?: row.copyOf()
    }

    /** An encoded row → the bytes of an integer input tensor: normalized as metadata asks, then quantized. */
    fun toQuantized(row: FloatArray): ByteArray = tensor.quantize(toModelInput(row))

    companion object {
        fun parse(metadata: Map<String, Any?>): TabularSpec {
            val input = Meta.obj(metadata, "input", "metadata")
            val kind = Meta.string(input, "kind", "input")
            if (kind != "tabular") throw MetadataException("input.kind is '$kind', not tabular")
            val features = Meta.list(input, "features", "input").mapIndexed { i, v ->
                v as? String ?: throw MetadataException("input.features[$i] is not a string")
            }
            val tensor = TensorSpec.parse(Meta.obj(input, "tensor", "input"), "input.tensor")
            if (tensor.shape.size != 2 || tensor.shape[1] != features.size) {
                throw MetadataException("input.tensor.shape is ${tensor.shape}, expected [batch, ${features.size}]")
            }
            val normalization = FeatureNormalization.parse(metadata)
            if (normalization != null && normalization.mean.size != features.size) {
                throw MetadataException(
                    "preprocessing.normalize has ${normalization.mean.size} values for ${features.size} features")
            }
            return TabularSpec(features, normalization, tensor)
        }
    }
}

/** What the app needs from metadata.json to run a classifier: labels, input, output. */
class ModelSpec(val labels: List<String>, val input: InputSpec, val output: TensorSpec) {
    companion object {
        fun parse(metadata: Map<String, Any?>): ModelSpec {
            val labels = Meta.list(metadata, "labels", "metadata").mapIndexed { i, v ->
                v as? String ?: throw MetadataException("labels[$i] is not a string")
            }
            val input = InputSpec.parse(metadata)
            val output = TensorSpec.parse(Meta.obj(Meta.obj(metadata, "output", "metadata"), "tensor", "output"),
                                          "output.tensor")
            val classes = output.shape.lastOrNull() ?: -1
            if (classes > 0 && classes != labels.size) {
                throw MetadataException("the output has $classes values but there are ${labels.size} labels")
            }
            return ModelSpec(labels, input, output)
        }
    }
}

data class Prediction(val index: Int, val label: String, val score: Float)

/** A square region of the ink raster, in pixels; it may reach past the raster's edges (blank there). */
class Window(val left: Double, val top: Double, val size: Double)

object Preprocess {
    /** A pixel counts as ink for the bounding box above this coverage (anti-aliased stroke edges are fainter). */
    const val INK_THRESHOLD = 0.1f

    /** The fitted window is at least this fraction of the raster, so a dot does not become a full-frame blob. */
    const val MIN_FIT_FRACTION = 0.25

    /**
     * An ink-coverage raster (row-major, [side]×[side], 0 = blank, 1 = full ink) → one model input row (NHWC),
     * in the model's raw value range: low + coverage × (high − low), the same value in every channel.
     *
     * With [fit], the drawing's bounding box is first scaled and centred into the frame (see [fitWindow]);
     * without it, the whole pad is the frame.
     */
    fun toModelInput(ink: FloatArray, side: Int, spec: InputSpec, fit: Boolean): FloatArray {
        if (side < spec.height || side < spec.width) {
            throw IllegalArgumentException("a ${side}×$side raster is smaller than the ${spec.height}×${spec.width} input")
        }
        val window = if (fit) fitWindow(ink, side) else Window(0.0, 0.0, side.toDouble())
        val coverage = areaAverage(ink, side, window, spec.height, spec.width)
        val out = FloatArray(spec.size)
        val span = spec.high - spec.low
        for (i in coverage.indices) {
            val v = spec.low + coverage[i] * span
            for (c in 0 until spec.channels) out[i * spec.channels + c] = v
        }
        return out
    }

    /**
     * The square frame that holds the drawing the way sklearn's 8×8 digits hold theirs. Measured on all 1,797
     * of them: every digit spans all 8 rows and about 6 of the 8 columns, centred. So: take the ink's bounding
     * box, make its longer side the frame size (aspect kept, no margin), and centre it. An empty raster gives
     * the whole raster.
     */
    fun fitWindow(ink: FloatArray, side: Int): Window {
        checkRaster(ink, side)
        var minX = side
        var minY = side
        var maxX = -1
        var maxY = -1
        for (y in 0 until side) {
            for (x in 0 until side) {
                if (ink[y * side + x] > INK_THRESHOLD) {
                    if (x < minX) minX = x
                    if (x > maxX) maxX = x
                    if (y < minY) minY = y
                    if (y > maxY) maxY = y
                }
            }
        }
        if (maxX < 0) return Window(0.0, 0.0, side.toDouble())
        val size = maxOf((maxX - minX + 1).toDouble(), (maxY - minY + 1).toDouble(), side * MIN_FIT_FRACTION)
        val centerX = (minX + maxX + 1) / 2.0
        val centerY = (minY + maxY + 1) / 2.0
        return Window(centerX - size / 2, centerY - size / 2, size)
    }

    /**
     * Mean coverage of each of [outH]×[outW] equal cells of [window]: every raster pixel contributes in
     * proportion to the area it shares with the cell (so any raster size works, and total ink is conserved).
     * Parts of the window outside the raster count as blank.
     */
    fun areaAverage(ink: FloatArray, side: Int, window: Window, outH: Int, outW: Int): FloatArray {
        checkRaster(ink, side)
        val cellW = window.size / outW
        val cellH = window.size / outH
        val out = FloatArray(outH * outW)
        for (oy in 0 until outH) {
            val y0 = window.top + oy * cellH
            for (ox in 0 until outW) {
                val x0 = window.left + ox * cellW
                val sum = inkIn(ink, side, x0, y0, x0 + cellW, y0 + cellH)
                out[oy * outW + ox] = (sum / (cellW * cellH)).coerceIn(0.0, 1.0).toFloat()
            }
        }
        return out
    }

    /** The [k] highest scores with their labels, best first; ties keep label order. No softmax: outputs are probabilities. */
    fun topK(scores: FloatArray, labels: List<String>, k: Int): List<Prediction> {
        val order = scores.indices.sortedWith(Comparator { a, b ->
            val byScore = rank(scores[b]).compareTo(rank(scores[a]))
            if (byScore != 0) byScore else a - b
        })
        return order.take(maxOf(0, k)).map { i -> Prediction(i, labels.getOrElse(i) { it.toString() }, scores[i]) }
    }

    private fun rank(score: Float): Float = if (score.isNaN()) Float.NEGATIVE_INFINITY else score

    /** Ink × overlap area over the pixels that meet the rectangle [x0, x1) × [y0, y1). */
    private fun inkIn(ink: FloatArray, side: Int, x0: Double, y0: Double, x1: Double, y1: Double): Double {
        val px0 = maxOf(0, Math.floor(x0).toInt())
        val px1 = minOf(side, Math.ceil(x1).toInt())
        val py0 = maxOf(0, Math.floor(y0).toInt())
        val py1 = minOf(side, Math.ceil(y1).toInt())
        var sum = 0.0
        for (py in py0 until py1) {
            val overlapY = minOf(y1, py + 1.0) - maxOf(y0, py.toDouble())
            if (overlapY <= 0.0) continue
            for (px in px0 until px1) {
                val overlapX = minOf(x1, px + 1.0) - maxOf(x0, px.toDouble())
                if (overlapX > 0.0) sum += ink[py * side + px] * overlapX * overlapY
            }
        }
        return sum
    }

    private fun checkRaster(ink: FloatArray, side: Int) {
        if (side <= 0 || ink.size != side * side) {
            throw IllegalArgumentException("the raster has ${ink.size} values, expected $side×$side")
        }
    }
}

/** Typed reads from parsed JSON (objects are maps, numbers Long or Double), with errors that name the key. */
internal object Meta {
    fun obj(parent: Map<String, Any?>, key: String, where: String): Map<String, Any?> {
        val v = parent[key] ?: throw MetadataException("$where.$key is missing")
        if (v !is Map<*, *>) throw MetadataException("$where.$key is not an object")
        @Suppress("UNCHECKED_CAST")
        return v as Map<String, Any?>
    }

    fun list(parent: Map<String, Any?>, key: String, where: String): List<Any?> =
        parent[key] as? List<*> ?: throw MetadataException("$where.$key is missing or not a list")

    fun string(parent: Map<String, Any?>, key: String, where: String): String =
        parent[key] as? String ?: throw MetadataException("$where.$key is missing or not a string")

    fun optString(parent: Map<String, Any?>, key: String): String? = parent[key] as? String

    fun int(parent: Map<String, Any?>, key: String, where: String): Int =
        toInt(parent[key] ?: throw MetadataException("$where.$key is missing"), "$where.$key")

    fun optDouble(parent: Map<String, Any?>, key: String, where: String): Double? {
        val v = parent[key] ?: return null
        return toDouble(v, "$where.$key")
    }

    fun toDouble(v: Any?, where: String): Double =
        (v as? Number)?.toDouble() ?: throw MetadataException("$where is not a number")

    fun toInt(v: Any?, where: String): Int {
        val d = toDouble(v, where)
        if (d != Math.floor(d)) throw MetadataException("$where is not an integer")
        return d.toInt()
    }
}
