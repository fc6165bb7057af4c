package dev.mobileml.demo.model

import dev.mobileml.demo.ml.MetadataException
import dev.mobileml.demo.ml.ModelSpec
import dev.mobileml.demo.ml.Prediction
import dev.mobileml.demo.ml.Preprocess

/**
 * The top predictions for one drawing, every class's probability ([scores], for monitoring), the exact input the
 * model saw, and how long LiteRT took.
 */
class Classification(val predictions: List<Prediction>, val scores: FloatArray, val modelInput: FloatArray,
                     val latencyMs: Double)

/**
 * The model helper: owns the LiteRT interpreter for the model the app currently runs and turns an ink raster
 * into predictions. Confined to one thread (the ViewModel's model dispatcher); [close] it when replaced.
 */
class DigitClassifier private constructor(val files: ModelFiles, private val model: LiteRtModel) : AutoCloseable {
    val spec: ModelSpec get() = model.spec

    /** [ink] is a [side]×[side] coverage raster (InkRaster); [fit] scales and centres the drawing first. */
    fun classify(ink: FloatArray, side: Int, fit: Boolean): Classification {
        val input = Preprocess.toModelInput(ink, side, spec.input, fit)
        val scores = model.run(input)
        return Classification(Preprocess.topK(scores, spec.labels, TOP_K), scores, input, model.lastRunNanos / 1e6)
    }

    override fun close() = model.close()

    companion object {
        const val TOP_K = 3

        /** Throws [MetadataException] (or LiteRT's IllegalArgumentException) when the files cannot be run. */
        fun create(files: ModelFiles): DigitClassifier {
            val model = LiteRtModel.open(files.model, ModelSpec.parse(files.metadata))
            try {
                // The first run allocates and prepares kernels; do it now so the first latency shown is a real one.
                model.run(FloatArray(model.spec.input.size) { model.spec.input.low })
            } catch (e: Exception) {
                model.close()
                throw e
            }
            return DigitClassifier(files, model)
        }
    }
}
