package dev.mobileml.demo.ui

import androidx.compose.foundation.Canvas
import androidx.compose.foundation.background
import androidx.compose.foundation.gestures.awaitEachGesture
import androidx.compose.foundation.gestures.awaitFirstDown
import androidx.compose.foundation.gestures.drag
import androidx.compose.foundation.layout.aspectRatio
import androidx.compose.foundation.shape.RoundedCornerShape
import androidx.compose.material3.MaterialTheme
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateListOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberUpdatedState
import androidx.compose.ui.Modifier
import androidx.compose.ui.draw.clip
import androidx.compose.ui.geometry.Offset
import androidx.compose.ui.geometry.Size
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.Path
import androidx.compose.ui.graphics.StrokeCap
import androidx.compose.ui.graphics.StrokeJoin
import androidx.compose.ui.graphics.drawscope.DrawScope
import androidx.compose.ui.graphics.drawscope.Stroke
import androidx.compose.ui.input.pointer.pointerInput
import androidx.compose.ui.unit.dp

/**
 * A square pad to draw on with one finger. Each finished stroke (points scaled to 0..1) goes to [onStroke];
 * the pen is InkRaster's, so what is shown is what the model gets.
 */
@Composable
fun DrawingPad(strokes: List<InkStroke>, onStroke: (InkStroke) -> Unit, modifier: Modifier = Modifier) {
    val current = remember { mutableStateListOf<Offset>() }
    val latestOnStroke by rememberUpdatedState(onStroke)
    val ink = MaterialTheme.colorScheme.onSurface
    Canvas(
        modifier
            .aspectRatio(1f)
            .clip(RoundedCornerShape(12.dp))
            .background(MaterialTheme.colorScheme.surfaceVariant)
            .pointerInput(Unit) {
                awaitEachGesture {
                    val down = awaitFirstDown()
                    val width = size.width.toFloat()
                    val height = size.height.toFloat()
                    fun scaled(p: Offset) = Offset((p.x / width).coerceIn(0f, 1f), (p.y / height).coerceIn(0f, 1f))
                    current.clear()
                    current.add(scaled(down.position))
                    down.consume()
                    // Consuming every move keeps an enclosing scroll container from taking the gesture.
                    drag(down.id) { change ->
                        current.add(scaled(change.position))
                        change.consume()
                    }
                    latestOnStroke(current.toList())
                    current.clear()
                }
            }
    ) {
        val width = size.minDimension * InkRaster.STROKE_WIDTH
        for (stroke in strokes) drawInk(stroke, ink, width)
        drawInk(current, ink, width)
    }
}

private fun DrawScope.drawInk(points: List<Offset>, color: Color, width: Float) {
    if (points.isEmpty()) return
    val first = Offset(points[0].x * size.width, points[0].y * size.height)
    if (points.size == 1) {
        drawCircle(color, radius = width / 2, center = first)
        return
    }
    val path = Path()
    path.moveTo(first.x, first.y)
    for (i in 1 until points.size) path.lineTo(points[i].x * size.width, points[i].y * size.height)
    drawPath(path, color, style = Stroke(width = width, cap = StrokeCap.Round, join = StrokeJoin.Round))
}

/** The model's input for the last drawing, one cell per input pixel (channels averaged), shaded over its range. */
@Composable
fun InputPreview(input: ModelInput, modifier: Modifier = Modifier) {
    val ink = MaterialTheme.colorScheme.onSurface
    val paper = MaterialTheme.colorScheme.surfaceVariant
    Canvas(modifier.aspectRatio(input.width.toFloat() / input.height)) {
        val cell = Size(size.width / input.width, size.height / input.height)
        val span = if (input.high != input.low) input.high - input.low else 1f
        drawRect(paper)
        for (y in 0 until input.height) {
            for (x in 0 until input.width) {
                var sum = 0f
                for (c in 0 until input.channels) sum += input.values[(y * input.width + x) * input.channels + c]
                val level = ((sum / input.channels - input.low) / span).coerceIn(0f, 1f)
                drawRect(ink.copy(alpha = level), topLeft = Offset(x * cell.width, y * cell.height), size = cell)
            }
        }
    }
}
