package dev.mobileml.demo.update

import android.util.Log
import dev.mobileml.updater.AggregatesUpload
import dev.mobileml.updater.Aggregator
import dev.mobileml.updater.Baseline
import dev.mobileml.updater.UpdaterConfig
import java.io.File

/**
 * Counts every inference into the [Aggregator] of the model version that made it (docs/monitoring.md), kept in
 * `<dir>/<model>--<channel>--<version>.json` across restarts, and uploads the counts at each update check.
 * A version without a baseline (a model exported before baselines existed) is simply not counted. Thread-safe:
 * inferences come from the model thread, uploads from the update worker.
 */
class Monitoring(private val dir: File, private val model: String) {
    private val open = HashMap<String, Aggregator>()  // file name → aggregator

    /**
     * Count one inference of [version] on [channel]; [baseline] is the version's baseline.json, null: none.
     * Each aggregator is its own lock (AggregatesUpload takes it around snapshot and acknowledge), and this object's
     * lock only guards the map, never held while an aggregator's is.
     */
    fun observe(version: String, channel: String, baseline: ByteArray?, input: FloatArray, probs: FloatArray,
                latencyMs: Double) {
        val agg = synchronized(this) { aggregator(version, channel, baseline) } ?: return
        synchronized(agg) {
            try {
                agg.observe(input, probs, latencyMs)
                write(agg, agg.stateJson())
            } catch (e: IllegalArgumentException) {  // the baseline does not fit this model's input: a publish mistake
                Log.w(TAG, "inference not counted for $version: ${e.message}")
            }
        }
    }

    /** Upload each open version's counts; nothing here fails the update check (the results say what happened). */
    fun upload(config: UpdaterConfig): List<AggregatesUpload.Result> {
        val aggregators = synchronized(this) { open.values.filter { it.channel == config.channel }.toList() }
        val upload = AggregatesUpload(config)
        return aggregators.map { agg -> upload.upload(agg) { json -> write(agg, json) } }  // under agg's lock
    }

    private fun aggregator(version: String, channel: String, baseline: ByteArray?): Aggregator? {
        val name = fileName(version, channel)
        open[name]?.let { return it }
        val parsed = try {
            Baseline.parse(baseline ?: return null)
        } catch (e: Exception) {  // Rejected: a damaged or foreign baseline.json counts nothing
            Log.w(TAG, "baseline of $version unusable: ${e.message}")
            return null
        }
        val file = File(dir, name)
        val agg = try {
            if (file.isFile) Aggregator.restore(parsed, model, version, channel, file.readBytes()) else null
        } catch (e: Exception) {  // a damaged state file: start a new window rather than stop counting
            Log.w(TAG, "aggregates state of $version unreadable, starting over: ${e.message}")
            null
        } ?: Aggregator(parsed, model, version, channel)
        open[name] = agg
        return agg
    }

    private fun fileName(version: String, channel: String) = "$model--$channel--$version.json"

    /** Temp file, then rename, so a crash mid-write leaves the previous counts. */
    private fun write(agg: Aggregator, json: String) {
        dir.mkdirs()
        val target = File(dir, fileName(agg.version, agg.channel))
        val tmp = File(dir, ".${target.name}.tmp")
        try {
            tmp.writeText(json)
            if (!tmp.renameTo(target)) Log.w(TAG, "cannot replace $target")
        } catch (e: java.io.IOException) {
            Log.w(TAG, "cannot save $target: ${e.message}")
        }
    }

    private companion object {
        const val TAG = "Monitoring"
    }
}
