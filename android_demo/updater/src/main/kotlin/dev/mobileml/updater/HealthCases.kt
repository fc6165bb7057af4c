package dev.mobileml.updater

/** The metadata's `health_check` case: a known input, the expected probabilities, top-1 and tolerance. */
object HealthCases {
    /** `health_check.input`, flattened in row-major (NHWC) order, unquantized. */
    fun input(metadata: Map<String, Any?>): FloatArray {
        val out = ArrayList<Float>()
        flatten(case(metadata)["input"], out)
        return out.toFloatArray()
    }

    /** `health_check.input_quantized` for integer-input models, flattened; null for float inputs. */
    fun quantizedInput(metadata: Map<String, Any?>): IntArray? {
        val q = case(metadata)["input_quantized"] ?: return null
        val out = ArrayList<Float>()
        flatten(q, out)
        return IntArray(out.size) { Math.round(out[it]) }
    }

    /** Same top-1 and every probability within `atol` of the expected one, as the Python client requires. */
    fun compare(metadata: Map<String, Any?>, probabilities: FloatArray): HealthResult {
        val case = case(metadata)
        val expected = (case["expected_probabilities"] as? List<*>)?.map { (it as Number).toDouble() }
            ?: return HealthResult(false, "metadata has no expected_probabilities")
        val top1 = (case["expected_top1"] as? Number)?.toInt() ?: return HealthResult(false, "no expected_top1")
        val atol = (case["atol"] as? Number)?.toDouble() ?: 1e-3
        if (probabilities.size != expected.size) {
            return HealthResult(false, "output has ${probabilities.size} values, expected ${expected.size}")
        }
        var best = 0
        var diff = 0.0
        for (i in probabilities.indices) {
            if (probabilities[i] > probabilities[best]) best = i
            diff = maxOf(diff, Math.abs(probabilities[i] - expected[i]))
        }
        if (best != top1) return HealthResult(false, "top-1 is $best, expected $top1")
        if (diff > atol) return HealthResult(false, "outputs differ by ${"%.3g".format(diff)} (> ${"%.3g".format(atol)})")
        return HealthResult(true, "ok (max |diff| ${"%.3g".format(diff)})")
    }

    private fun case(metadata: Map<String, Any?>): Map<*, *> =
        metadata["health_check"] as? Map<*, *> ?: throw IllegalArgumentException("metadata has no health_check")

    private fun flatten(v: Any?, out: MutableList<Float>) {
        when (v) {
            is Number -> out.add(v.toFloat())
            is List<*> -> for (x in v) flatten(x, out)
            else -> throw IllegalArgumentException("health_check input holds $v")
        }
    }
}
