package dev.mobileml.demo.ui

import android.app.Application
import android.util.Log
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import androidx.work.Data
import androidx.work.WorkInfo
import dev.mobileml.demo.BuildConfig
import dev.mobileml.demo.DemoApplication
import dev.mobileml.demo.model.Classification
import dev.mobileml.demo.model.DigitClassifier
import dev.mobileml.demo.model.ModelFiles
import dev.mobileml.demo.model.ModelSource
import dev.mobileml.demo.settings.DownloadConditions
import dev.mobileml.demo.settings.Settings
import dev.mobileml.demo.update.UpdateWorker
import dev.mobileml.updater.InstalledModel
import dev.mobileml.updater.LastCheck
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.util.concurrent.Executors

/**
 * Owns the running model and the screen state. Every LiteRT call (load, run, close) happens on one model thread,
 * because the Interpreter is not thread-safe; the UI only ever sees [state].
 */
class DigitViewModel(app: Application) : AndroidViewModel(app) {
    private val container = (app as DemoApplication).container
    private val modelExecutor = Executors.newSingleThreadExecutor { Thread(it, "litert") }
    private val modelThread = modelExecutor.asCoroutineDispatcher()
    private var classifier: DigitClassifier? = null  // modelThread only
    private var classifyJob: Job? = null

    private val _state = MutableStateFlow(
        UiState(settings = container.settings.current,
                update = UpdateStatus(disabledReason = container.updatesDisabledReason)))
    val state: StateFlow<UiState> = _state.asStateFlow()

    init {
        viewModelScope.launch {
            container.settings.settings.collect { s -> _state.update { it.copy(settings = s) } }
        }
        viewModelScope.launch(Dispatchers.IO) {
            val id = container.settings.installId
            val consent = container.capture.state().consent
            _state.update { it.copy(installId = id, captureConsent = consent) }
        }
        observeWork()
        reloadModel()
    }

    fun onStroke(stroke: InkStroke) {
        _state.update { it.copy(strokes = it.strokes + listOf(stroke)) }
        classify()
    }

    fun clear() {
        classifyJob?.cancel()
        _state.update {
            it.copy(strokes = emptyList(), predictions = emptyList(), latencyMs = null, modelInput = null,
                    labelPrompt = null)
        }
    }

    /** The Settings switch: revoking consent deletes every queued drawing at once (CaptureQueue.setConsent). */
    fun setCaptureConsent(consent: Boolean) {
        viewModelScope.launch(Dispatchers.IO) {
            val st = container.capture.setConsent(consent)
            _state.update { it.copy(captureConsent = st.consent, labelPrompt = if (st.consent) it.labelPrompt else null) }
        }
    }

    /** "Was this right?": [label] is what the drawing really is (the prediction itself when it was right). */
    fun answerLabel(label: String) {
        val prompt = _state.value.labelPrompt ?: return
        _state.update { it.copy(labelPrompt = null) }
        viewModelScope.launch(Dispatchers.IO) { container.capture.label(prompt.sampleId, label) }
    }

    /** No answer: the sample stays queued, unlabelled (capture export skips it for training). */
    fun dismissLabel() = _state.update { it.copy(labelPrompt = null) }

    fun setFitDrawing(fit: Boolean) {
        container.settings.update { it.copy(fitDrawing = fit) }
        classify()
    }

    fun setTelemetry(enabled: Boolean) = container.settings.update { it.copy(telemetry = enabled) }

    fun setConditions(conditions: DownloadConditions) {
        container.settings.update { it.copy(conditions = conditions) }
        container.scheduler.schedulePeriodic(conditions, container.updatesEnabled)
    }

    /** Blank resets to the build's default. Returns what is wrong with [url], or null once saved. */
    fun saveServerUrl(url: String): String? {
        val trimmed = url.trim()
        if (trimmed.isNotEmpty()) Settings.serverUrlProblem(trimmed)?.let { return it }
        container.settings.update { it.copy(serverUrlOverride = trimmed.ifEmpty { null }) }
        return null
    }

    /** Blank resets to the build's default. Returns what is wrong with [channel], or null once saved. */
    fun saveChannel(channel: String): String? {
        val trimmed = channel.trim()
        if (trimmed.isNotEmpty()) Settings.channelProblem(trimmed)?.let { return it }
        container.settings.update { it.copy(channelOverride = trimmed.ifEmpty { null }) }
        reloadModel()  // the last check shown belongs to the updater's state; re-read it
        return null
    }

    fun checkNow() {
        if (container.updatesEnabled) container.scheduler.checkNow()
    }

    /** Main thread only. Reads settings from the repository: the state's copy may lag a just-made change. */
    private fun classify() {
        val strokes = _state.value.strokes
        val settings = container.settings.current
        classifyJob?.cancel()
        if (strokes.isEmpty()) return
        classifyJob = viewModelScope.launch(modelThread) {
            val model = classifier ?: return@launch
            val result = try {
                model.classify(InkRaster.rasterize(strokes), InkRaster.SIDE, settings.fitDrawing)
            } catch (e: Exception) {
                Log.e(TAG, "inference failed", e)
                _state.update { it.copy(modelError = "Inference failed: ${e.message}") }
                return@launch
            }
            ensureActive()
            // Only for the drawing it was computed from: clear() or a new stroke may have come in since
            // ensureActive(). Comparing the very list (not its contents) inside update() closes that race.
            _state.update {
                if (it.strokes !== strokes) it
                else it.copy(predictions = result.predictions, latencyMs = result.latencyMs,
                             modelInput = result.toModelInput(model))
            }
            if (settings.telemetry) container.inferenceTelemetry.record(model.files.version, result.latencyMs)
            observe(model, result, settings)
        }
    }

    /**
     * Model thread. Every inference is counted for monitoring (with telemetry on: the counts go to the same server)
     * and offered to the capture queue, which takes it only with consent, a policy that is on and a draw under its
     * rate. A taken drawing gets the "was this right?" prompt.
     */
    private fun observe(model: DigitClassifier, result: Classification, settings: Settings) {
        val files = model.files
        if (settings.telemetry) {
            container.monitoring.observe(files.version, settings.channel, files.baseline, result.modelInput,
                                         result.scores, result.latencyMs)
        }
        val top = result.predictions.firstOrNull() ?: return
        // Pixels as whole values in the model's range: the server refuses fractional ones for an image model.
        val pixels = DoubleArray(result.modelInput.size) { Math.round(result.modelInput[it]).toDouble() }
        val sampleId = container.capture.offer(pixels, files.version, top.label, top.score.toDouble().coerceIn(0.0, 1.0))
            ?: return
        // cleared meanwhile: the sample stays queued unlabelled, with no prompt for a drawing no longer shown
        val prompt = LabelPrompt(sampleId, top.label, model.spec.labels)
        _state.update { if (it.strokes.isEmpty()) it else it.copy(labelPrompt = prompt) }
    }

    /**
     * Runs the model the updater says is current (or the bundled one), swapping the interpreter only when that
     * changed, and refreshes the last-check record. Called at start, whenever no update work runs, on channel
     * change.
     */
    private fun reloadModel() {
        viewModelScope.launch(modelThread) {
            val updater = try {
                container.newUpdater()
            } catch (e: Exception) {
                Log.e(TAG, "cannot create the updater", e)
                null
            }
            val installed: InstalledModel? = updater?.current()
            val lastCheck = updater?.lastCheck()?.toInfo()
            var error: String? = null
            if (!isRunning(installed)) {
                var next: DigitClassifier? = null
                if (installed != null) {
                    next = try {
                        DigitClassifier.create(ModelFiles.installed(installed))
                    } catch (e: Exception) {
                        Log.e(TAG, "installed model ${installed.version} failed to load", e)
                        error = "Downloaded model ${installed.version} failed to load (${e.message}); running the bundled one."
                        null
                    }
                }
                if (next == null) {
                    next = try {
                        DigitClassifier.create(ModelFiles.bundled(getApplication<Application>()))
                    } catch (e: Exception) {
                        Log.e(TAG, "bundled model failed to load", e)
                        error = "The bundled model (assets/${ModelFiles.BUNDLE_DIR}/) cannot run: ${e.message}"
                        null
                    }
                }
                classifier?.close()
                classifier = next
                _state.update { it.copy(model = next?.info(), modelError = error) }
            }
            _state.update { it.copy(update = it.update.copy(lastCheck = lastCheck)) }
            // Show the (possibly new) model's answer for what is on the pad.
            withContext(Dispatchers.Main.immediate) { classify() }
        }
    }

    private fun isRunning(installed: InstalledModel?): Boolean {
        val files = classifier?.files ?: return false
        return if (installed == null) files.source == ModelSource.BUNDLED
        else files.source == ModelSource.DOWNLOADED && files.version == installed.version
    }

    /** Follows both update works: shows progress, and reloads the model whenever none runs (see [UpdateWatch]). */
    private fun observeWork() {
        viewModelScope.launch {
            container.scheduler.work().collect { (periodic, now) ->
                val view = UpdateWatch.view(periodic?.let { observed(it) }, now?.let { observed(it) })
                _state.update {
                    it.copy(update = it.update.copy(checking = view.checking, progress = view.progress,
                                                    lastResult = view.result ?: it.update.lastResult))
                }
                if (view.reload) reloadModel()
            }
        }
    }

    private fun observed(info: WorkInfo) = WorkObservation(running = info.state == WorkInfo.State.RUNNING,
                                                           finished = info.state.isFinished,
                                                           progress = describeProgress(info.progress),
                                                           result = describe(info.outputData))

    override fun onCleared() {
        // viewModelScope is already cancelled; close the interpreter on its own thread, after anything queued.
        modelExecutor.execute {
            classifier?.close()
            classifier = null
        }
        modelExecutor.shutdown()
        container.appScope.launch { container.inferenceTelemetry.flush() }
    }

    private fun DigitClassifier.info(): ModelInfo {
        val input = spec.input
        return ModelInfo(BuildConfig.MODEL, files.version, files.source,
                         "${input.height}×${input.width}×${input.channels} ${input.tensor.type.wire}")
    }

    private fun Classification.toModelInput(model: DigitClassifier): ModelInput {
        val input = model.spec.input
        return ModelInput(modelInput.toList(), input.height, input.width, input.channels, input.low, input.high)
    }

    private fun LastCheck.toInfo() = LastCheckInfo(time, outcome, reason)

    private fun describe(data: Data): String? {
        val outcome = data.getString(UpdateWorker.KEY_OUTCOME) ?: return null
        val reason = data.getString(UpdateWorker.KEY_REASON)
        val detail = data.getString(UpdateWorker.KEY_DETAIL).orEmpty()
        val current = data.getString(UpdateWorker.KEY_CURRENT)
        return buildString {
            append(outcome.replace('_', ' '))
            if (reason != null) append(" ($reason)")
            if (current != null && outcome != "disabled") append(", running $current")
            if (detail.isNotEmpty()) append(": ").append(detail)
        }
    }

    private fun describeProgress(data: Data): String? {
        val file = data.getString(UpdateWorker.KEY_FILE) ?: return null
        val bytes = data.getLong(UpdateWorker.KEY_BYTES, 0)
        val total = data.getLong(UpdateWorker.KEY_TOTAL, 0)
        return "$file ${bytes / 1024} / ${total / 1024} KB"
    }

    private companion object {
        const val TAG = "DigitViewModel"
    }
}
