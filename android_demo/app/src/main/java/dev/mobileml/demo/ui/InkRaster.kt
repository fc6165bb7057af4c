package dev.mobileml.demo.ui

import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.Path
import androidx.compose.ui.geometry.Offset

/** One pen stroke: points in pad coordinates scaled to 0..1, so it does not depend on the screen's size. */
typealias InkStroke = List<Offset>

/**
 * Strokes → an ink-coverage raster (row-major, [SIDE]×[SIDE], 0 = blank, 1 = full ink), drawn with the same
 * round, anti-aliased pen as the pad on screen, so the model sees what the user sees.
 */
object InkRaster {
    /** Big enough to average down to any small input cleanly (16 pixels per cell for 8×8). */
    const val SIDE = 128

    /**
     * Pen width as a fraction of the pad. A digit drawn across most of the pad then has strokes about a tenth
     * of its height thick, like the 32×32 bitmaps sklearn's 8×8 digits were counted from.
     */
    const val STROKE_WIDTH = 1f / 14

    fun rasterize(strokes: List<InkStroke>, side: Int = SIDE): FloatArray {
        val bitmap = Bitmap.createBitmap(side, side, Bitmap.Config.ARGB_8888)
        try {
            val canvas = Canvas(bitmap)
            val paint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
                color = Color.BLACK
                style = Paint.Style.STROKE
                strokeWidth = side * STROKE_WIDTH
                strokeCap = Paint.Cap.ROUND
                strokeJoin = Paint.Join.ROUND
            }
            for (stroke in strokes) {
                if (stroke.isEmpty()) continue
                if (stroke.size == 1) {
                    // A tap: with a round cap, a point is drawn as a dot of the pen's width.
                    canvas.drawPoint(stroke[0].x * side, stroke[0].y * side, paint)
                    continue
                }
                val path = Path()
                path.moveTo(stroke[0].x * side, stroke[0].y * side)
                for (i in 1 until stroke.size) path.lineTo(stroke[i].x * side, stroke[i].y * side)
                canvas.drawPath(path, paint)
            }
            val pixels = IntArray(side * side)
            bitmap.getPixels(pixels, 0, side, 0, 0, side, side)
            // Coverage is the alpha the pen left: independent of colour, and exact for anti-aliased edges.
            return FloatArray(pixels.size) { (pixels[it] ushr 24) / 255f }
        } finally {
            bitmap.recycle()
        }
    }
}
