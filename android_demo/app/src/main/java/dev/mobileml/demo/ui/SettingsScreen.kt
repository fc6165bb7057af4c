package dev.mobileml.demo.ui

import androidx.activity.compose.BackHandler
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.consumeWindowInsets
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.imePadding
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.ExperimentalMaterial3Api
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Switch
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.material3.TopAppBar
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import dev.mobileml.demo.BuildConfig
import dev.mobileml.demo.settings.DownloadConditions
import dev.mobileml.demo.settings.Settings
import java.net.URI

/** The settings screen's actions; each returns at once, the state flows back through [UiState]. */
class SettingsActions(
    val onBack: () -> Unit,
    val onCheckNow: () -> Unit,
    val onConditionsChange: (DownloadConditions) -> Unit,
    val onTelemetryChange: (Boolean) -> Unit,
    /** The capture consent: off deletes every drawing still queued. */
    val onCaptureConsentChange: (Boolean) -> Unit,
    /** Returns what is wrong with the URL, or null once saved; blank restores the build's default. */
    val onSaveServerUrl: (String) -> String?,
    /** Returns what is wrong with the channel, or null once saved; blank restores the build's default. */
    val onSaveChannel: (String) -> String?,
)

/** Channel, model version, last check, server, "check now" and the download conditions. */
@OptIn(ExperimentalMaterial3Api::class)
@Composable
fun SettingsScreen(state: UiState, actions: SettingsActions) {
    BackHandler(onBack = actions.onBack)
    Scaffold(
        topBar = {
            TopAppBar(
                title = { Text("Settings") },
                navigationIcon = { TextButton(onClick = actions.onBack) { Text("Back") } },
            )
        },
    ) { padding ->
        Column(
            // Edge-to-edge: the keyboard covers the window, so the text fields must scroll above it (imePadding).
            // consumeWindowInsets keeps the navigation bar, already in Scaffold's padding, from counting twice.
            Modifier
                .padding(padding)
                .consumeWindowInsets(padding)
                .imePadding()
                .verticalScroll(rememberScrollState())
                .padding(16.dp),
            verticalArrangement = Arrangement.spacedBy(12.dp),
        ) {
            ModelSection(state)
            HorizontalDivider()
            UpdateSection(state.update, actions.onCheckNow)
            HorizontalDivider()
            ServerSection(state.settings, actions)
            HorizontalDivider()
            ConditionsSection(state.settings.conditions, actions.onConditionsChange)
            HorizontalDivider()
            SwitchRow("Send telemetry (inference latency, update results; only a hash of the install id)",
                      state.settings.telemetry, actions.onTelemetryChange)
            SwitchRow("Share some of my drawings to improve the model (only when the publisher asks for samples; " +
                          "at most a few a day; turning this off deletes those not sent yet)",
                      state.captureConsent, actions.onCaptureConsentChange)
            Text("Install id: ${state.installId}", style = MaterialTheme.typography.bodySmall)
        }
    }
}

@Composable
private fun ModelSection(state: UiState) {
    Title("Model")
    val model = state.model
    Text(if (model == null) "No model loaded" else "${model.name} ${model.version} (${model.source.label}), input ${model.input}")
    Text("Channel: ${state.settings.channel}")
    state.modelError?.let { ErrorCard(it) }
}

@Composable
private fun UpdateSection(update: UpdateStatus, onCheckNow: () -> Unit) {
    Title("Updates")
    update.disabledReason?.let { ErrorCard(it) }
    Text(update.lastCheck?.let { lastCheckText(it) } ?: "No update check yet.")
    update.lastResult?.let { Text("Last “check now”: $it", style = MaterialTheme.typography.bodySmall) }
    Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(12.dp)) {
        Button(onClick = onCheckNow, enabled = update.disabledReason == null && !update.checking) { Text("Check now") }
        if (update.checking) Text("Checking… ${update.progress.orEmpty()}", style = MaterialTheme.typography.bodySmall)
    }
    Text("“Check now” needs only a network connection; the periodic check (every 6 hours) waits for the " +
         "conditions below.", style = MaterialTheme.typography.bodySmall)
}

@Composable
private fun ServerSection(settings: Settings, actions: SettingsActions) {
    Title("Server")
    EditableSetting(
        label = "Server URL (publish root)",
        saved = settings.serverUrlOverride.orEmpty(),
        placeholder = BuildConfig.SERVER_URL,
        note = cleartextNote(settings.serverUrl),
        onSave = actions.onSaveServerUrl,
    )
    EditableSetting(
        label = "Channel",
        saved = settings.channelOverride.orEmpty(),
        placeholder = BuildConfig.CHANNEL,
        note = null,
        onSave = actions.onSaveChannel,
    )
}

/** Plain HTTP works only to the development hosts, and only in debug builds (network security config). */
private fun cleartextNote(url: String): String? {
    val uri = runCatching { URI(url) }.getOrNull() ?: return null
    if (uri.scheme != "http") return null
    return if (uri.host in Settings.CLEARTEXT_HOSTS) "Plain HTTP: allowed to this development host in debug builds only."
    else "Plain HTTP to ${uri.host} is blocked unless it is added to the debug network security config " +
         "(see android_demo/README.md); otherwise use HTTPS."
}

@Composable
private fun EditableSetting(label: String, saved: String, placeholder: String, note: String?,
                            onSave: (String) -> String?) {
    var text by rememberSaveable(saved) { mutableStateOf(saved) }
    var error by rememberSaveable(saved) { mutableStateOf<String?>(null) }
    OutlinedTextField(
        value = text,
        onValueChange = {
            text = it
            error = null
        },
        label = { Text(label) },
        placeholder = { Text(placeholder) },
        singleLine = true,
        isError = error != null,
        supportingText = { Text(error ?: note ?: "Empty: the build's default, $placeholder") },
        modifier = Modifier.fillMaxWidth(),
    )
    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        Button(onClick = { error = onSave(text) }, enabled = text.trim() != saved) { Text("Save") }
    }
}

@Composable
private fun ConditionsSection(c: DownloadConditions, onChange: (DownloadConditions) -> Unit) {
    Title("Download conditions (periodic check)")
    SwitchRow("Only on Wi-Fi (unmetered network)", c.unmeteredOnly) { onChange(c.copy(unmeteredOnly = it)) }
    SwitchRow("Only when the battery is not low", c.batteryNotLow) { onChange(c.copy(batteryNotLow = it)) }
    SwitchRow("Only while charging", c.charging) { onChange(c.copy(charging = it)) }
    SwitchRow("Only while the device is idle", c.idle) { onChange(c.copy(idle = it)) }
}

@Composable
private fun SwitchRow(label: String, checked: Boolean, onChange: (Boolean) -> Unit) {
    Row(Modifier.fillMaxWidth(), verticalAlignment = Alignment.CenterVertically) {
        Text(label, modifier = Modifier.weight(1f).padding(end = 12.dp))
        Switch(checked = checked, onCheckedChange = onChange)
    }
}

@Composable
private fun Title(text: String) {
    Text(text, style = MaterialTheme.typography.titleMedium)
}
