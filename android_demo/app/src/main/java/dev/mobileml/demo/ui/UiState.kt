package dev.mobileml.demo.ui

import dev.mobileml.demo.model.ModelSource
import dev.mobileml.demo.ml.Prediction
import dev.mobileml.demo.settings.Settings

/** Everything the screens show; replaced whole on every change (never mutated). */
data class UiState(
    val strokes: List<InkStroke> = emptyList(),
    val predictions: List<Prediction> = emptyList(),
    /** LiteRT's Interpreter.run for the last drawing, in milliseconds. */
    val latencyMs: Double? = null,
    /** What the model was fed for the last drawing, for the preview. */
    val modelInput: ModelInput? = null,
    val model: ModelInfo? = null,
    /** Why the app runs another model than it should, or none at all. */
    val modelError: String? = null,
    val update: UpdateStatus = UpdateStatus(),
    val settings: Settings = Settings(),
    val installId: String = "",
    /** The user agreed to send sampled drawings (capture.json; the server's policy decides whether any are taken). */
    val captureConsent: Boolean = false,
    /** Non-null: the last drawing was queued for capture, and "was this right?" can label it. */
    val labelPrompt: LabelPrompt? = null,
)

/** A queued sample awaiting the user's answer: the model said [prediction]; the answer is one of [labels]. */
data class LabelPrompt(val sampleId: String, val prediction: String, val labels: List<String>)

data class ModelInfo(val name: String, val version: String, val source: ModelSource, val input: String)

data class ModelInput(val values: List<Float>, val height: Int, val width: Int, val channels: Int,
                      val low: Float, val high: Float)

data class UpdateStatus(
    /** Non-null: this build cannot update (no or bad embedded key); the reason, for the user. */
    val disabledReason: String? = null,
    val checking: Boolean = false,
    /** "model.tflite 12 / 28 KB" while a check downloads. */
    val progress: String? = null,
    /** The updater's record of its last check (any trigger), kept across restarts. */
    val lastCheck: LastCheckInfo? = null,
    /** What the last "check now" found, in words (the updater's detail). */
    val lastResult: String? = null,
)

data class LastCheckInfo(val time: String, val outcome: String, val reason: String?)
