package dev.mobileml.demo.ml

import dev.mobileml.updater.Json
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File

/**
 * Table rows for integer models: normalize per feature from metadata.json, then quantize. The vector is a real
 * `mobile-ml export` metadata.json (tests/vectors/tabular-int8-metadata.json, an int8 model of a table whose
 * features range from 0.1 to 1,500); its health check holds the raw row and the exporter's quantized tensor.
 */
class TabularTest {
    private val dir = File(System.getProperty("mobileml.vectors") ?: "../../tests/vectors")
    private val vector: Map<String, Any?> = Json.parseObject(File(dir, "tabular-int8-metadata.json").readBytes())

    private fun copyWith(path: List<String>, value: Any?): Map<String, Any?> {
        @Suppress("UNCHECKED_CAST")
        fun edit(node: Map<String, Any?>, i: Int): Map<String, Any?> {
            val out = LinkedHashMap(node)
            if (i == path.size - 1) out[path[i]] = value else out[path[i]] = edit(node[path[i]] as Map<String, Any?>, i + 1)
            return out
        }
        return edit(vector, 0)
    }

    private fun expectMetadataError(fragment: String, block: () -> Unit) {
        try {
            block()
            fail("expected a MetadataException mentioning '$fragment'")
        } catch (e: MetadataException) {
            assertTrue("message '${e.message}' should mention '$fragment'", e.message!!.contains(fragment))
        }
    }

    private fun numbers(v: Any?): List<Double> = (v as List<*>).map { (it as Number).toDouble() }

    @Test
    fun theHealthCheckRowNormalizedAndQuantizedIsTheExportersTensor() {
        val spec = TabularSpec.parse(vector)
        assertEquals(listOf("ratio", "length_cm", "mass_g", "offset"), spec.features)
        assertTrue(spec.tensor.isQuantized)
        val case = Meta.obj(vector, "health_check", "metadata")
        val raw = numbers(Meta.list(case, "input", "health_check")[0]).map { it.toFloat() }.toFloatArray()
        val expected = numbers(Meta.list(case, "input_quantized", "health_check")[0]).map { it.toInt().toByte() }
        assertArrayEquals(expected.toByteArray(), spec.toQuantized(raw))
    }

    @Test
    fun withoutNormalizationTheRawMassesSwampEveryOtherFeature() {
        // What the old design did: quantize raw features with a scale that fits the masses. The ratio (0.14) and the
        // length (3.8) both land on the zero point; normalized, each feature keeps its own distinct integer.
        val spec = TabularSpec.parse(vector)
        val raw = floatArrayOf(0.1409f, 3.81f, 1884.1f, 0.264f)
        val wide = TensorSpec("in", listOf(-1, 4), TensorType.INT8, 10.447458267211914, -128)
        val q = wide.quantize(raw)
        assertEquals(q[0], q[1])
        assertEquals(q[0], q[3])
        assertEquals(4, spec.toQuantized(raw).toSet().size)
    }

    @Test
    fun normalizesPerFeatureInFloat() {
        val norm = FeatureNormalization(floatArrayOf(0.12f, 12f, 1500f), floatArrayOf(0.03f, 3f, 400f))
        val out = norm.apply(floatArrayOf(0.15f, 6f, 2300f))
        assertArrayEquals(floatArrayOf((0.15f - 0.12f) / 0.03f, -2f, 2f), out, 0f)
    }

    @Test
    fun modelsThatNormalizeThemselvesHaveNoNormalization() {
        @Suppress("UNCHECKED_CAST")
        val pre = LinkedHashMap(vector["preprocessing"] as Map<String, Any?>)
        pre.remove("normalize")
        val float = LinkedHashMap(vector)
        float["preprocessing"] = pre
        assertNull(FeatureNormalization.parse(float))
        val spec = TabularSpec.parse(float)
        assertArrayEquals(floatArrayOf(1f, 2f, 3f, 4f), spec.toModelInput(floatArrayOf(1f, 2f, 3f, 4f)), 0f)
        assertNull(FeatureNormalization.parse(mapOf("labels" to listOf("a"))))
    }

    @Test
    fun badNormalizationIsNamed() {
        expectMetadataError("axis") {
            FeatureNormalization.parse(copyWith(listOf("preprocessing", "normalize", "axis"), "sample"))
        }
        expectMetadataError("std[1] is not positive") {
            FeatureNormalization.parse(copyWith(listOf("preprocessing", "normalize", "std"), listOf(1.0, 0.0, 1.0, 1.0)))
        }
        expectMetadataError("2 means and 4 stds") {
            FeatureNormalization.parse(copyWith(listOf("preprocessing", "normalize", "mean"), listOf(1.0, 2.0)))
        }
        expectMetadataError("mean[0] is not a number") {
            FeatureNormalization.parse(copyWith(listOf("preprocessing", "normalize", "mean"), listOf("x", 1.0, 1.0, 1.0)))
        }
        expectMetadataError("for 4 features") {
            TabularSpec.parse(copyWith(listOf("preprocessing", "normalize"),
                                       mapOf("axis" to "feature", "mean" to listOf(0.0), "std" to listOf(1.0))))
        }
    }

    @Test(expected = IllegalArgumentException::class)
    fun rowsOfTheWrongLengthAreRefused() {
        TabularSpec.parse(vector).toModelInput(floatArrayOf(1f, 2f))
    }
}
