package dev.mobileml.demo.model

import android.os.SystemClock
import dev.mobileml.demo.ml.InputSpec
import dev.mobileml.demo.ml.MetadataException
import dev.mobileml.demo.ml.ModelSpec
import dev.mobileml.demo.ml.TensorSpec
import dev.mobileml.demo.ml.TensorType
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor

/**
 * One LiteRT Interpreter for a single-input, single-output classifier, checked against its metadata.json on
 * open: the metadata decides how the app quantizes and reads, so a model whose tensors disagree with it is refused
 * rather than fed wrong bytes. Not thread-safe (neither is the Interpreter): use it from one thread.
 */
internal class LiteRtModel private constructor(private val interpreter: Interpreter, val spec: ModelSpec) :
    AutoCloseable {
    private val input = direct(interpreter.getInputTensor(0).numBytes())
    private val output = direct(interpreter.getOutputTensor(0).numBytes())
    private val outputCount = interpreter.getOutputTensor(0).numElements()

    /** Wall time of the last [run]'s Interpreter.run alone (no pre- or post-processing), in nanoseconds. */
    var lastRunNanos = 0L
        private set

    /** One input row of real values (NHWC, [InputSpec.size]) → the model's real outputs (dequantized if integer). */
    fun run(values: FloatArray): FloatArray {
        require(values.size == spec.input.size) { "input has ${values.size} values, the model takes ${spec.input.size}" }
        input.clear()
        if (spec.input.tensor.isQuantized) input.put(spec.input.tensor.quantize(values)) else values.forEach { input.putFloat(it) }
        input.rewind()
        output.rewind()
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        lastRunNanos = SystemClock.elapsedRealtimeNanos() - start
        output.rewind()
        return if (spec.output.isQuantized) {
            val raw = ByteArray(outputCount)
            output.get(raw)
            spec.output.dequantize(raw)
        } else {
            FloatArray(outputCount) { output.getFloat() }
        }
    }

    override fun close() = interpreter.close()

    companion object {
        /** Throws [MetadataException] when the model disagrees with [spec], LiteRT's exceptions when it is broken. */
        fun open(model: ByteBuffer, spec: ModelSpec): LiteRtModel {
            // One thread: stable latency figures, and an 8×8 model has nothing to split.
            val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(1))
            try {
                if (interpreter.inputTensorCount != 1 || interpreter.outputTensorCount != 1) {
                    throw MetadataException("the model has ${interpreter.inputTensorCount} inputs and " +
                        "${interpreter.outputTensorCount} outputs; the app runs single-input, single-output classifiers")
                }
                // Keras exports have a dynamic batch dimension; the app feeds one row.
                val shape = intArrayOf(1, spec.input.height, spec.input.width, spec.input.channels)
                if (!interpreter.getInputTensor(0).shape().contentEquals(shape)) {
                    interpreter.resizeInput(0, shape)
                    interpreter.allocateTensors()
                }
                checkTensor(interpreter.getInputTensor(0), spec.input.tensor, "input")
                checkTensor(interpreter.getOutputTensor(0), spec.output, "output")
                return LiteRtModel(interpreter, spec)
            } catch (e: Exception) {
                interpreter.close()
                throw e
            }
        }

        private fun checkTensor(tensor: Tensor, expected: TensorSpec, what: String) {
            val type = when (tensor.dataType()) {
                DataType.FLOAT32 -> TensorType.FLOAT32
                DataType.INT8 -> TensorType.INT8
                DataType.UINT8 -> TensorType.UINT8
                else -> null
            }
            if (type != expected.type) {
                throw MetadataException("metadata.json says the $what is ${expected.type.wire}, the model's is ${tensor.dataType()}")
            }
            if (expected.isQuantized) {
                val q = tensor.quantizationParams()
                val scale = expected.scale ?: 0.0
                if (Math.abs(q.scale - scale) > 1e-6 * scale || q.zeroPoint != expected.zeroPoint) {
                    throw MetadataException("metadata.json quantizes the $what with scale $scale, zero point " +
                        "${expected.zeroPoint}; the model uses ${q.scale}, ${q.zeroPoint}")
                }
            }
        }

        private fun direct(size: Int): ByteBuffer = ByteBuffer.allocateDirect(size).order(ByteOrder.nativeOrder())
    }
}
