package dev.mobileml.demo.ml

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class PreprocessTest {
    // The shape of `mobile-ml export`'s metadata.json for the int8 digits model, as the updater's Json parses it
    // (numbers are Long or Double).
    private fun tensor(dtype: String, shape: List<Long>, scale: Double?, zeroPoint: Long?): Map<String, Any?> =
        mapOf("name" to "t", "shape" to shape, "dtype" to dtype, "scale" to scale, "zero_point" to zeroPoint)

    private fun digitsMetadata(
        inputTensor: Map<String, Any?> = tensor("int8", listOf(-1L, 8L, 8L, 1L), 0.062745101749897, -128L),
        outputTensor: Map<String, Any?> = tensor("int8", listOf(-1L, 10L), 0.00390625, -128L),
        input: Map<String, Any?>? = null
    ): Map<String, Any?> = mapOf(
        "labels" to (0..9).map { it.toString() },
        "input" to (input ?: mapOf("kind" to "image", "height" to 8L, "width" to 8L, "channels" to 1L,
                                   "layout" to "NHWC", "value_range" to listOf(0.0, 16.0), "tensor" to inputTensor)),
        "output" to mapOf("meaning" to "softmax", "tensor" to outputTensor)
    )

    private fun floatSpec(h: Int, w: Int, c: Int, low: Float = 0f, high: Float = 16f) =
        InputSpec(h, w, c, low, high, TensorSpec("in", listOf(-1, h, w, c), TensorType.FLOAT32, null, 0))

    private fun expectMetadataError(fragment: String, block: () -> Unit) {
        try {
            block()
            fail("expected a MetadataException mentioning '$fragment'")
        } catch (e: MetadataException) {
            assertTrue("message '${e.message}' should mention '$fragment'", e.message!!.contains(fragment))
        }
    }

    @Test
    fun parsesTheDigitsInt8Metadata() {
        val spec = ModelSpec.parse(digitsMetadata())
        assertEquals(8, spec.input.height)
        assertEquals(8, spec.input.width)
        assertEquals(1, spec.input.channels)
        assertEquals(64, spec.input.size)
        assertEquals(0f, spec.input.low, 0f)
        assertEquals(16f, spec.input.high, 0f)
        assertEquals(TensorType.INT8, spec.input.tensor.type)
        assertEquals(-128, spec.input.tensor.zeroPoint)
        assertEquals(0.062745101749897, spec.input.tensor.scale!!, 0.0)
        assertEquals(listOf(-1, 8, 8, 1), spec.input.tensor.shape)
        assertEquals(TensorType.INT8, spec.output.type)
        assertEquals(10, spec.labels.size)
    }

    @Test
    fun floatModelsHaveNoQuantization() {
        val spec = ModelSpec.parse(digitsMetadata(
            inputTensor = tensor("float32", listOf(1L, 8L, 8L, 1L), null, null),
            outputTensor = tensor("float32", listOf(1L, 10L), null, null)))
        assertFalse(spec.input.tensor.isQuantized)
        assertEquals(null, spec.input.tensor.scale)
        assertFalse(spec.output.isQuantized)
    }

    @Test
    fun tabularModelsAreRefusedWithAClearMessage() {
        val tabular = mapOf("kind" to "tabular", "features" to listOf("a", "b"))
        expectMetadataError("tabular") { InputSpec.parse(digitsMetadata(input = tabular)) }
    }

    @Test
    fun missingAndMalformedKeysAreNamed() {
        expectMetadataError("input.height") {
            InputSpec.parse(digitsMetadata(input = mapOf("kind" to "image", "width" to 8L, "channels" to 1L,
                                                         "value_range" to listOf(0L, 16L))))
        }
        expectMetadataError("int16") {
            InputSpec.parse(digitsMetadata(inputTensor = tensor("int16", listOf(-1L, 8L, 8L, 1L), 0.1, 0L)))
        }
        expectMetadataError("no positive scale") {
            InputSpec.parse(digitsMetadata(inputTensor = tensor("int8", listOf(-1L, 8L, 8L, 1L), null, null)))
        }
        expectMetadataError("expected [batch, 8, 8, 1]") {
            InputSpec.parse(digitsMetadata(inputTensor = tensor("float32", listOf(-1L, 64L), null, null)))
        }
        expectMetadataError("10 labels") {
            ModelSpec.parse(digitsMetadata(outputTensor = tensor("float32", listOf(-1L, 12L), null, null)))
        }
    }

    @Test
    fun quantizesLikeTheExporterRoundingHalfToEvenAndClamping() {
        val t = TensorSpec("in", listOf(1, 4), TensorType.INT8, 0.5, -128)
        // 0.25 / 0.5 = 0.5 → 0 (half to even); 0.75 / 0.5 = 1.5 → 2; 1.25 / 0.5 = 2.5 → 2; 1000 clamps to 127.
        val q = t.quantize(floatArrayOf(0.25f, 0.75f, 1.25f, 1000f, -5f))
        assertArrayEquals(byteArrayOf(-128, -126, -126, 127, -128), q)
    }

    @Test
    fun quantizesTheDigitsRangeOntoTheWholeInt8Range() {
        val t = ModelSpec.parse(digitsMetadata()).input.tensor
        // scale is a hair above 16/255, so 8 lands just below the half step (127.49999 → 127 → -1).
        val q = t.quantize(floatArrayOf(0f, 8f, 16f))
        assertArrayEquals(byteArrayOf(-128, -1, 127), q)
    }

    @Test
    fun uint8UsesTheBitPatternOfTheUnsignedValue() {
        val t = TensorSpec("in", listOf(1, 3), TensorType.UINT8, 1.0, 0)
        val q = t.quantize(floatArrayOf(0f, 200f, 300f))
        assertArrayEquals(byteArrayOf(0, 200.toByte(), 255.toByte()), q)
        assertArrayEquals(floatArrayOf(0f, 200f, 255f), t.dequantize(q), 0f)
    }

    @Test
    fun dequantizesInt8Outputs() {
        val t = TensorSpec("out", listOf(1, 3), TensorType.INT8, 0.00390625, -128)
        assertArrayEquals(floatArrayOf(0f, 0.5f, 0.99609375f), t.dequantize(byteArrayOf(-128, 0, 127)), 0f)
    }

    @Test
    fun quantizeThenDequantizeIsWithinHalfAStep() {
        val t = TensorSpec("in", listOf(1, 5), TensorType.INT8, 0.062745101749897, -128)
        val x = floatArrayOf(0f, 1.3f, 7.77f, 12.01f, 16f)
        val back = t.dequantize(t.quantize(x))
        for (i in x.indices) assertEquals(x[i], back[i], (0.062745101749897 / 2 + 1e-6).toFloat())
    }

    @Test(expected = IllegalStateException::class)
    fun floatTensorsCannotBeQuantized() {
        TensorSpec("in", listOf(1), TensorType.FLOAT32, null, 0).quantize(floatArrayOf(1f))
    }

    @Test
    fun fullAndEmptyRastersMapToTheEndsOfTheValueRange() {
        val spec = floatSpec(8, 8, 1)
        val full = Preprocess.toModelInput(FloatArray(64 * 64) { 1f }, 64, spec, fit = false)
        val empty = Preprocess.toModelInput(FloatArray(64 * 64), 64, spec, fit = false)
        for (v in full) assertEquals(16f, v, 1e-5f)
        for (v in empty) assertEquals(0f, v, 0f)
    }

    @Test
    fun areaAveragingKeepsPositionAndTotalInk() {
        // Left half inked on a 16×16 raster → the left 4 of 8 columns are full, the rest blank.
        val side = 16
        val ink = FloatArray(side * side) { if (it % side < side / 2) 1f else 0f }
        val out = Preprocess.toModelInput(ink, side, floatSpec(8, 8, 1), fit = false)
        for (y in 0 until 8) for (x in 0 until 8) assertEquals(if (x < 4) 16f else 0f, out[y * 8 + x], 1e-5f)

        // A raster that is not a multiple of the target: every pixel still counts once, by the area it covers.
        val odd = 13
        val noisy = FloatArray(odd * odd) { ((it * 37) % 11) / 10f }
        val cells = Preprocess.areaAverage(noisy, odd, Window(0.0, 0.0, odd.toDouble()), 8, 8)
        val cellArea = (odd / 8.0) * (odd / 8.0)
        assertEquals(noisy.sum().toDouble(), cells.sum() * cellArea, 1e-3)
    }

    @Test
    fun fittingScalesTheDrawingToFillTheFrameHeightAndCentresIt() {
        // A 4-wide, 8-tall block in the top-left corner of a 32×32 pad.
        val side = 32
        val ink = FloatArray(side * side)
        for (y in 2 until 10) for (x in 1 until 5) ink[y * side + x] = 1f
        val out = Preprocess.toModelInput(ink, side, floatSpec(8, 8, 1), fit = true)
        // Height fills all 8 rows; width (half the height) fills the middle 4 columns.
        for (y in 0 until 8) {
            for (x in 0 until 8) assertEquals("($x,$y)", if (x in 2..5) 16f else 0f, out[y * 8 + x], 1e-4f)
        }
        // Without fitting, the same drawing stays a small blob in the corner.
        val unfitted = Preprocess.toModelInput(ink, side, floatSpec(8, 8, 1), fit = false)
        assertEquals(0f, unfitted[7 * 8 + 7], 0f)
        assertTrue(unfitted[1 * 8 + 0] > 0f)
    }

    @Test
    fun fittingATinyDotKeepsAMinimumFrame() {
        val side = 32
        val ink = FloatArray(side * side)
        ink[16 * side + 16] = 1f
        val w = Preprocess.fitWindow(ink, side)
        assertEquals(side * Preprocess.MIN_FIT_FRACTION, w.size, 1e-9)
        assertEquals(16.5, w.left + w.size / 2, 1e-9)
        assertEquals(16.5, w.top + w.size / 2, 1e-9)
    }

    @Test
    fun fittingAnEmptyRasterUsesTheWholePad() {
        val w = Preprocess.fitWindow(FloatArray(100), 10)
        assertEquals(0.0, w.left, 0.0)
        assertEquals(0.0, w.top, 0.0)
        assertEquals(10.0, w.size, 0.0)
    }

    @Test
    fun colourModelsGetTheSameValueInEveryChannel() {
        val out = Preprocess.toModelInput(FloatArray(4 * 4) { 1f }, 4, floatSpec(2, 2, 3, low = -1f, high = 1f), false)
        assertEquals(12, out.size)
        for (v in out) assertEquals(1f, v, 1e-6f)
    }

    @Test(expected = IllegalArgumentException::class)
    fun rastersSmallerThanTheInputAreRefused() {
        Preprocess.toModelInput(FloatArray(16), 4, floatSpec(8, 8, 1), fit = false)
    }

    @Test(expected = IllegalArgumentException::class)
    fun rastersOfTheWrongSizeAreRefused() {
        Preprocess.fitWindow(FloatArray(10), 4)
    }

    @Test
    fun topKOrdersByScoreThenLabelOrder() {
        val labels = listOf("zero", "one", "two", "three")
        val top = Preprocess.topK(floatArrayOf(0.1f, 0.6f, 0.1f, 0.2f), labels, 3)
        assertEquals(listOf(Prediction(1, "one", 0.6f), Prediction(3, "three", 0.2f), Prediction(0, "zero", 0.1f)), top)
        assertEquals(4, Preprocess.topK(floatArrayOf(1f, 2f, 3f, 4f), labels, 10).size)
        assertEquals(0, Preprocess.topK(floatArrayOf(1f), labels, 0).size)
    }

    @Test
    fun topKNamesUnlabelledClassesByIndexAndRanksNaNLast() {
        val top = Preprocess.topK(floatArrayOf(Float.NaN, 0.2f, 0.7f), listOf("a"), 3)
        assertEquals(listOf(2, 1, 0), top.map { it.index })
        assertEquals("2", top[0].label)
    }
}
