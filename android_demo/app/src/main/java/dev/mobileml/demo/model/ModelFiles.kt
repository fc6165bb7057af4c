package dev.mobileml.demo.model

import android.content.Context
import dev.mobileml.demo.ml.MetadataException
import dev.mobileml.updater.InstalledModel
import dev.mobileml.updater.Json
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

enum class ModelSource(val label: String) { BUNDLED("bundled"), DOWNLOADED("downloaded") }

/**
 * A model ready to hand to LiteRT: its bytes in a direct buffer (what the Interpreter needs; read whole, as these
 * models are tens of KB, which also means no asset needs storing uncompressed) and its parsed metadata.json.
 * [baseline] is the release's baseline.json (what monitoring counts against), null when the release has none.
 */
class ModelFiles(val version: String, val source: ModelSource, val model: ByteBuffer, val metadata: Map<String, Any?>,
                 val baseline: ByteArray? = null) {
    companion object {
        /** The fallback shipped in the APK: assets/bundle/{model.tflite, metadata.json, bundle.json}. */
        const val BUNDLE_DIR = "bundle"

        fun bundled(context: Context): ModelFiles {
            val assets = context.assets
            val bundle = jsonObject(assets.open("$BUNDLE_DIR/bundle.json").use { it.readBytes() }, "bundle.json")
            val version = bundle["version"] as? String
                ?: throw MetadataException("assets/$BUNDLE_DIR/bundle.json has no \"version\"")
            val metadata = jsonObject(assets.open("$BUNDLE_DIR/metadata.json").use { it.readBytes() }, "metadata.json")
            val model = assets.open("$BUNDLE_DIR/model.tflite").use { it.readBytes() }
            val baseline = try {
                assets.open("$BUNDLE_DIR/$BASELINE").use { it.readBytes() }
            } catch (e: java.io.IOException) {
                null  // a bundle made before baselines existed: its inferences are not counted
            }
            return ModelFiles(version, ModelSource.BUNDLED, direct(model), metadata, baseline)
        }

        /** A model the updater verified, health-checked and switched to. */
        fun installed(model: InstalledModel): ModelFiles {
            val baseline = File(model.dir, BASELINE).takeIf { it.isFile }?.readBytes()
            return ModelFiles(model.version, ModelSource.DOWNLOADED, read(model.modelFile), model.metadata, baseline)
        }

        /** The file `mobile-ml export` writes beside metadata.json (mobile_ml.monitor.baseline.BASELINE_FILE). */
        const val BASELINE = "baseline.json"

        fun read(file: File): ByteBuffer = direct(file.readBytes())

        private fun direct(bytes: ByteArray): ByteBuffer =
            ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).apply {
                put(bytes)
                rewind()
            }

        private fun jsonObject(bytes: ByteArray, name: String): Map<String, Any?> {
            val value = try {
                Json.parse(String(bytes, Charsets.UTF_8))
            } catch (e: Exception) {  // the updater's Json.ParseError
                throw MetadataException("$name is not valid JSON: ${e.message}")
            }
            if (value !is Map<*, *>) throw MetadataException("$name is not a JSON object")
            @Suppress("UNCHECKED_CAST")
            return value as Map<String, Any?>
        }
    }
}
