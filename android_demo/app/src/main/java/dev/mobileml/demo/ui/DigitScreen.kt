package dev.mobileml.demo.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.ExperimentalLayoutApi
import androidx.compose.foundation.layout.FlowRow
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.Spacer
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.size
import androidx.compose.foundation.layout.width
import androidx.compose.foundation.layout.widthIn
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Card
import androidx.compose.material3.CardDefaults
import androidx.compose.material3.ExperimentalMaterial3Api
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Switch
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.material3.TopAppBar
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import dev.mobileml.demo.ml.Prediction

/** Draw a digit, see what the current model thinks and how long LiteRT took. */
@OptIn(ExperimentalMaterial3Api::class)
@Composable
fun DigitScreen(
    state: UiState,
    onStroke: (InkStroke) -> Unit,
    onClear: () -> Unit,
    onFitChange: (Boolean) -> Unit,
    onAnswerLabel: (String) -> Unit,
    onDismissLabel: () -> Unit,
    onOpenSettings: () -> Unit,
) {
    Scaffold(
        topBar = {
            TopAppBar(
                title = { Text("Draw a digit") },
                actions = { TextButton(onClick = onOpenSettings) { Text("Settings") } },
            )
        },
    ) { padding ->
        Column(
            Modifier
                .padding(padding)
                .verticalScroll(rememberScrollState())
                .padding(16.dp),
            verticalArrangement = Arrangement.spacedBy(12.dp),
            horizontalAlignment = Alignment.CenterHorizontally,
        ) {
            ModelLine(state.model, failed = state.modelError != null)
            state.modelError?.let { ErrorCard(it) }
            DrawingPad(state.strokes, onStroke, Modifier.widthIn(max = 420.dp).fillMaxWidth())
            Row(Modifier.fillMaxWidth(), verticalAlignment = Alignment.CenterVertically) {
                OutlinedButton(onClick = onClear) { Text("Clear") }
                Spacer(Modifier.weight(1f))
                Text("Fit and centre", style = MaterialTheme.typography.bodyMedium)
                Spacer(Modifier.width(8.dp))
                Switch(checked = state.settings.fitDrawing, onCheckedChange = onFitChange)
            }
            Row(Modifier.fillMaxWidth(), horizontalArrangement = Arrangement.spacedBy(16.dp)) {
                state.modelInput?.let { InputPreview(it, Modifier.size(96.dp)) }
                Column(Modifier.weight(1f), verticalArrangement = Arrangement.spacedBy(6.dp)) {
                    if (state.predictions.isEmpty()) {
                        Text("Draw a digit on the pad.", style = MaterialTheme.typography.bodyMedium)
                    }
                    state.predictions.forEach { PredictionRow(it) }
                    state.latencyMs?.let {
                        Text("LiteRT inference: ${"%.3f".format(it)} ms (CPU, 1 thread)",
                             style = MaterialTheme.typography.bodySmall)
                    }
                }
            }
            state.labelPrompt?.let { LabelPromptCard(it, onAnswerLabel, onDismissLabel) }
            UpdateLine(state.update)
        }
    }
}

/**
 * "Was this right?" for a drawing the capture queue took: "Yes" labels it with the prediction, "No" shows every
 * label to pick the right one; "Skip" leaves it unlabelled.
 */
@OptIn(ExperimentalLayoutApi::class)
@Composable
private fun LabelPromptCard(prompt: LabelPrompt, onAnswer: (String) -> Unit, onDismiss: () -> Unit) {
    var picking by remember(prompt.sampleId) { mutableStateOf(false) }
    Card(modifier = Modifier.fillMaxWidth()) {
        Column(Modifier.padding(12.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            Text(if (picking) "Which digit is it?" else "Was this a ${prompt.prediction}?",
                 style = MaterialTheme.typography.titleMedium)
            if (picking) {
                FlowRow(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    prompt.labels.forEach { label -> OutlinedButton(onClick = { onAnswer(label) }) { Text(label) } }
                }
            } else {
                Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    OutlinedButton(onClick = { onAnswer(prompt.prediction) }) { Text("Yes") }
                    OutlinedButton(onClick = { picking = true }) { Text("No") }
                    TextButton(onClick = onDismiss) { Text("Skip") }
                }
            }
            Text("This drawing will be sent with your answer at the next update check (Settings to stop sharing).",
                 style = MaterialTheme.typography.bodySmall)
        }
    }
}

@Composable
private fun ModelLine(model: ModelInfo?, failed: Boolean) {
    val text = when {
        model != null -> "Model ${model.name} ${model.version} (${model.source.label}) · input ${model.input}"
        failed -> "No model running."
        else -> "Loading model…"
    }
    Text(text, style = MaterialTheme.typography.bodyMedium, modifier = Modifier.fillMaxWidth())
}

@Composable
private fun PredictionRow(p: Prediction) {
    Row(verticalAlignment = Alignment.CenterVertically) {
        Text(p.label, style = MaterialTheme.typography.titleLarge, modifier = Modifier.width(40.dp))
        LinearProgressIndicator(progress = { p.score.coerceIn(0f, 1f) }, modifier = Modifier.weight(1f))
        Text("${"%.1f".format(p.score * 100)} %", style = MaterialTheme.typography.bodyMedium,
             modifier = Modifier.padding(start = 8.dp).width(64.dp))
    }
}

@Composable
private fun UpdateLine(update: UpdateStatus) {
    val text = when {
        update.disabledReason != null -> update.disabledReason
        update.checking -> "Checking for a model update…" + (update.progress?.let { " $it" } ?: "")
        update.lastCheck != null -> lastCheckText(update.lastCheck)
        else -> "No update check yet."
    }
    Text(text, style = MaterialTheme.typography.bodySmall, modifier = Modifier.fillMaxWidth())
}

fun lastCheckText(c: LastCheckInfo): String =
    "Last check ${c.time}: ${c.outcome.replace('_', ' ')}" + (c.reason?.let { " ($it)" } ?: "")

@Composable
fun ErrorCard(message: String) {
    Card(colors = CardDefaults.cardColors(containerColor = MaterialTheme.colorScheme.errorContainer),
         modifier = Modifier.fillMaxWidth()) {
        Text(message, color = MaterialTheme.colorScheme.onErrorContainer, modifier = Modifier.padding(12.dp))
    }
}
