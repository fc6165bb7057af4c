package dev.mobileml.demo.model

import dev.mobileml.demo.ml.ModelSpec
import dev.mobileml.demo.ml.TensorType
import dev.mobileml.updater.HealthCases
import dev.mobileml.updater.HealthCheck
import dev.mobileml.updater.HealthResult
import java.io.File

/**
 * The updater's step 8 on the device: load the downloaded model with a fresh LiteRT interpreter, run the known
 * input from its metadata.json exactly as the app will feed drawings (same quantization code), and let
 * [HealthCases.compare] judge the output. Never throws: any failure is a failed health check.
 */
class LiteRtHealthCheck : HealthCheck {
    override fun check(model: File, metadata: Map<String, Any?>): HealthResult {
        return try {
            val spec = ModelSpec.parse(metadata)
            val input = HealthCases.input(metadata)
            if (input.size != spec.input.size) {
                return HealthResult(false, "health_check.input has ${input.size} values, the input takes ${spec.input.size}")
            }
            quantizationProblem(spec, input, metadata)?.let { return HealthResult(false, it) }
            LiteRtModel.open(ModelFiles.read(model), spec).use { HealthCases.compare(metadata, it.run(input)) }
        } catch (e: Exception) {
            HealthResult(false, "${e.javaClass.simpleName}: ${e.message}")
        }
    }

    /**
     * The app must quantize the known input to the exporter's own bytes (health_check.input_quantized), or it
     * would feed drawings wrongly too.
     */
    private fun quantizationProblem(spec: ModelSpec, input: FloatArray, metadata: Map<String, Any?>): String? {
        if (!spec.input.tensor.isQuantized) return null
        val expected = HealthCases.quantizedInput(metadata) ?: return null
        val ours = spec.input.tensor.quantize(input)
        val type = spec.input.tensor.type
        for (i in ours.indices) {
            val q = if (type == TensorType.UINT8) ours[i].toInt() and 0xFF else ours[i].toInt()
            if (i >= expected.size || q != expected[i]) {
                return "the app quantizes input[$i] to $q, the exporter to ${expected.getOrNull(i)}"
            }
        }
        return null
    }
}
