package dev.mobileml.demo

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import androidx.activity.viewModels
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import dev.mobileml.demo.ui.DigitScreen
import dev.mobileml.demo.ui.DigitViewModel
import dev.mobileml.demo.ui.SettingsActions
import dev.mobileml.demo.ui.SettingsScreen
import dev.mobileml.demo.ui.theme.DemoTheme

/** Two screens, the drawing pad and the settings, over one ViewModel. */
class MainActivity : ComponentActivity() {
    private val viewModel: DigitViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        enableEdgeToEdge()
        setContent {
            DemoTheme {
                val state by viewModel.state.collectAsStateWithLifecycle()
                var showSettings by rememberSaveable { mutableStateOf(false) }
                if (showSettings) {
                    SettingsScreen(
                        state,
                        SettingsActions(
                            onBack = { showSettings = false },
                            onCheckNow = viewModel::checkNow,
                            onConditionsChange = viewModel::setConditions,
                            onTelemetryChange = viewModel::setTelemetry,
                            onCaptureConsentChange = viewModel::setCaptureConsent,
                            onSaveServerUrl = viewModel::saveServerUrl,
                            onSaveChannel = viewModel::saveChannel,
                        ),
                    )
                } else {
                    DigitScreen(
                        state,
                        onStroke = viewModel::onStroke,
                        onClear = viewModel::clear,
                        onFitChange = viewModel::setFitDrawing,
                        onAnswerLabel = viewModel::answerLabel,
                        onDismissLabel = viewModel::dismissLabel,
                        onOpenSettings = { showSettings = true },
                    )
                }
            }
        }
    }
}
