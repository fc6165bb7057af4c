package dev.mobileml.updater

import org.junit.AfterClass
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.BeforeClass
import org.junit.FixMethodOrder
import org.junit.Test
import org.junit.runners.MethodSorters
import java.io.File
import java.net.HttpURLConnection
import java.net.ServerSocket
import java.net.URL
import java.util.concurrent.TimeUnit

/**
 * The Kotlin updater against the real `mobile-ml serve` on loopback, over a root that the real `mobile-ml publish`
 * writes as the test goes: first install, 304, an update whose download is cut and resumed, a tampered blob, a
 * replayed old manifest and a forged one, then the server's telemetry summary.
 *
 * Needs `-Dmobileml.world=DIR` (from integration/make_world.py: a trained run with int8 and fp32 exports and a key)
 * and `-Dmobileml.bin=DIR` (where `mobile-ml` and `python` live). test.sh sets both; without them the test is
 * skipped, unless `-Dmobileml.requireIntegration=true` makes that a failure (as test.sh does).
 *
 * The health-check hook runs the downloaded model with LiteRT's Python interpreter (a JVM has no LiteRT) and
 * judges the output with [HealthCases.compare], the same code the app uses.
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING)
class IntegrationTest {
    companion object {
        private var world: File? = null
        private var bin: File? = null
        private lateinit var root: File
        private lateinit var state: File
        private lateinit var db: File
        private lateinit var url: String
        private var server: Process? = null
        private var tmp: File? = null
        private val healthChecks = ArrayList<String>()
        private const val TOKEN = "kotlin-it-telemetry-token-0123456789"  // serve --telemetry-token: 401 without it

        @BeforeClass
        @JvmStatic
        fun start() {
            world = System.getProperty("mobileml.world")?.let { File(it) }
            bin = System.getProperty("mobileml.bin")?.let { File(it) }
            if (System.getProperty("mobileml.requireIntegration") == "true") {
                assertTrue("-Dmobileml.world and -Dmobileml.bin are required", world != null && bin != null)
            }
            assumeTrue("set -Dmobileml.world and -Dmobileml.bin to run against mobile-ml serve", world != null && bin != null)
            tmp = java.nio.file.Files.createTempDirectory("updater-it").toFile()
            root = File(tmp!!, "root")
            state = File(tmp!!, "device")
            db = File(tmp!!, "telemetry.db")
            val port = ServerSocket(0).use { it.localPort }
            url = "http://127.0.0.1:$port/"
            root.mkdirs()
            server = ProcessBuilder(File(bin, "mobile-ml").path, "serve", root.path, "--port", "$port",
                                    "--telemetry-db", db.path, "--telemetry-token", TOKEN)
                .redirectErrorStream(true).redirectOutput(File(tmp!!, "serve.log")).start()
            val deadline = System.currentTimeMillis() + 60000
            while (!healthy()) {
                assertTrue("mobile-ml serve did not start: ${File(tmp!!, "serve.log").readText()}",
                           System.currentTimeMillis() < deadline && server!!.isAlive)
                Thread.sleep(200)
            }
        }

        @AfterClass
        @JvmStatic
        fun stop() {
            server?.destroy()  // SIGTERM: the server stops gracefully
            server?.waitFor(10, TimeUnit.SECONDS)
            tmp?.deleteRecursively()
        }

        private fun healthy(): Boolean = try {
            (URL(url + "v1/health").openConnection() as HttpURLConnection).responseCode == 200
        } catch (e: java.io.IOException) {
            false
        }

        fun run(vararg args: String): String {
            val p = ProcessBuilder(listOf(File(bin, "mobile-ml").path) + args.toList()).redirectErrorStream(true).start()
            val out = p.inputStream.readBytes().toString(Charsets.UTF_8)
            assertTrue("mobile-ml ${args.joinToString(" ")} timed out", p.waitFor(120, TimeUnit.SECONDS))
            assertEquals("mobile-ml ${args.joinToString(" ")}:\n$out", 0, p.exitValue())
            return out
        }

        fun publish(version: String, variant: String, channel: String = "beta") {
            run("publish", File(world, "run").path, "--root", root.path, "--model", "digits", "--version", version,
                "--channel", channel, "--key", File(world, "keys").path, "--variant", variant)
        }
    }

    /** LiteRT (through Python's ai-edge-litert) runs the health case; Kotlin judges the output. */
    private val health = object : HealthCheck {
        override fun check(model: File, metadata: Map<String, Any?>): HealthResult {
            val script = "import json,sys,numpy as np\n" +
                "from mobile_ml.export import tflite_file\n" +
                "meta=json.load(open(sys.argv[2]))\n" +
                "it=tflite_file.load_interpreter(open(sys.argv[1],'rb').read(),'model')\n" +
                "print(json.dumps(tflite_file.predict(it,np.asarray(meta['health_check']['input'],np.float32))[0].tolist()))"
            val p = ProcessBuilder(File(bin, "python").path, "-c", script, model.path,
                                   File(model.parentFile, "metadata.json").path).start()
            val out = p.inputStream.readBytes().toString(Charsets.UTF_8)
            val err = p.errorStream.readBytes().toString(Charsets.UTF_8)
            if (p.waitFor() != 0) return HealthResult(false, "LiteRT could not run the model: ${err.trim().lines().last()}")
            val probs = (Json.parse(out.trim()) as List<*>).map { (it as Number).toFloat() }.toFloatArray()
            val result = HealthCases.compare(metadata, probs)
            healthChecks.add(result.detail)
            return result
        }
    }

    private fun config(channel: String = "beta", token: String? = TOKEN) =
        UpdaterConfig(url, "digits", channel, File(world, "keys/public.b64").readText(), state, "kotlin-device-1",
                      "1.0.0", deviceModel = "kotlin-updater-test", timeoutMillis = 10000, telemetryToken = token)

    private fun updater(listener: UpdateListener? = null, channel: String = "beta") =
        Updater(config(channel), health, listener)

    private fun blob(variant: String) = File(world, "run/exports/$variant/model.tflite").readBytes()

    private fun assertRuns(version: String, variant: String, partialDownloadKept: Boolean = false) {
        val current = updater().current()
        assertNotNull("no model installed", current)
        assertEquals(version, current!!.version)
        assertEquals(Codec.sha256Hex(blob(variant)), Codec.sha256Hex(current.modelFile.readBytes()))
        val leftovers = state.walk().filter {
            (it.name.endsWith(".part") && !partialDownloadKept) || it.name.endsWith(".tmp")
        }.toList()
        assertEquals(emptyList<File>(), leftovers)
    }

    @Test
    fun t1_firstInstall() {
        publish("1.0.0", "int8")
        val r = updater().sync()
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertEquals("1.0.0", r.current)
        assertRuns("1.0.0", "int8")
        assertEquals(1, healthChecks.size)
        assertEquals("installed", updater().lastCheck()!!.outcome)
        // The monitoring baseline is a third signed file: downloaded, verified and installed beside the model.
        val exported = File(world, "run/exports/int8/baseline.json")
        assertTrue("the export wrote no baseline.json", exported.isFile)
        val installed = File(updater().current()!!.modelFile.parentFile, "baseline.json")
        assertEquals(Codec.sha256Hex(exported.readBytes()), Codec.sha256Hex(installed.readBytes()))
    }

    @Test
    fun t2_unchangedChannelIsA304() {
        val r = updater().sync()
        assertEquals(r.toString(), Outcome.NOT_MODIFIED, r.outcome)
        assertRuns("1.0.0", "int8")
    }

    @Test
    fun t3_updateCutMidDownloadResumesWhereItStopped() {
        publish("1.1.0", "fp32")
        val size = blob("fp32").size.toLong()
        var cutAt = -1L
        val cutter = object : UpdateListener {
            override fun onProgress(file: String, bytes: Long, total: Long) {
                if (file == "model.tflite" && bytes < total) {
                    cutAt = bytes
                    throw IllegalStateException("the app was stopped")
                }
            }
        }
        val cut = updater(cutter).sync()
        assertEquals(cut.toString(), Outcome.FAILED, cut.outcome)
        assertEquals("interrupted", cut.reason)
        assertTrue("the model ($size bytes) must be cut mid-file", cutAt in 1 until size)
        assertRuns("1.0.0", "int8", partialDownloadKept = true)  // the old model stays live
        val part = File(state, "staging/${Codec.sha256Hex(blob("fp32"))}.part")
        assertEquals(cutAt, part.length())

        val seen = ArrayList<Long>()
        var resumedAt = -1L
        val watcher = object : UpdateListener {
            override fun onStart(file: String, offset: Long, total: Long) {
                if (file == "model.tflite") resumedAt = offset
            }

            override fun onProgress(file: String, bytes: Long, total: Long) {
                if (file == "model.tflite") seen.add(bytes)
            }
        }
        val r = updater(watcher).sync()
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertEquals("the server sent only the rest (206 from the cut)", cutAt, resumedAt)
        assertTrue("progress went on from $cutAt: ${seen.firstOrNull()}", seen.first() > cutAt)
        assertEquals(size, seen.last())
        assertEquals("1.0.0", r.previous)
        assertRuns("1.1.0", "fp32")
        assertTrue("the previous version is kept", File(state, "versions/1.0.0/model.tflite").exists())
    }

    @Test
    fun t4_tamperedBlobIsRefusedAndTheModelStays() {
        publish("1.2.0", "int8")
        val blobFile = File(root, "blobs/sha256/${Codec.sha256Hex(blob("int8"))}")
        val good = blobFile.readBytes()
        val bad = good.copyOf()
        bad[bad.size / 2] = (bad[bad.size / 2].toInt() xor 1).toByte()
        blobFile.writeBytes(bad)
        try {
            val r = updater().sync()
            assertEquals(r.toString(), Outcome.REJECTED, r.outcome)
            assertEquals("hash_mismatch", r.reason)
            assertRuns("1.1.0", "fp32")
        } finally {
            blobFile.writeBytes(good)
        }
        val r = updater().sync()  // the publisher repairs the blob: the next check installs it
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertRuns("1.2.0", "int8")
    }

    @Test
    fun t5_replayedOldManifestAndForgedManifestAreRefused() {
        val channel = File(root, "digits/channels/beta.json")
        val sig = File(root, "digits/channels/beta.json.sig")
        val saved = Pair(channel.readBytes(), sig.readBytes())
        try {
            // A replay: the real, validly signed manifest of 1.0.0, served again (a mirror or attacker).
            File(root, "digits/history/beta/00000001.json").copyTo(channel, overwrite = true)
            File(root, "digits/history/beta/00000001.json.sig").copyTo(sig, overwrite = true)
            val replay = updater().sync()
            assertEquals(replay.toString(), Outcome.REJECTED, replay.outcome)
            assertEquals("rollback", replay.reason)
            assertRuns("1.2.0", "int8")

            // A forgery: the current manifest edited to halt the rollout, its old signature kept.
            channel.writeBytes(String(saved.first, Charsets.UTF_8).replace("\"halted\": false", "\"halted\": true")
                                   .toByteArray(Charsets.UTF_8))
            sig.writeBytes(saved.second)
            val forged = updater().sync()
            assertEquals(forged.toString(), Outcome.REJECTED, forged.outcome)
            assertEquals("bad_signature", forged.reason)
            assertRuns("1.2.0", "int8")
        } finally {
            channel.writeBytes(saved.first)
            sig.writeBytes(saved.second)
        }
        val r = updater().sync()  // the genuine manifest again: its ETag is the one the device accepted last
        assertEquals(r.toString(), Outcome.NOT_MODIFIED, r.outcome)
    }

    @Test
    fun t6_updateEventsReachTheServersTelemetry() {
        val event = listOf(TelemetryEvent("inference", "1.2.0", 1.5))
        assertTrue("the server refuses telemetry without its token", !Telemetry(config(token = null)).send(event))
        assertTrue("and takes it with the token", Telemetry(config()).send(event))
        val out = run("telemetry", "summary", "--db", db.path, "--json")
        val rows = (Json.parse(out.trim()) as Map<*, *>)["rows"] as List<*>
        val mine = rows.map { it as Map<*, *> }.filter { it["device_model"] == "kotlin-updater-test" }
        val applied = mine.fold(0L) { n, row -> n + row["updates_applied"] as Long }
        val failed = mine.fold(0L) { n, row -> n + row["updates_failed"] as Long }
        assertEquals("installs of 1.0.0, 1.1.0 and 1.2.0: $mine", 3L, applied)
        assertEquals("cut download, tampered blob, replay, forgery: $mine", 4L, failed)
        val inferences = mine.fold(0L) { n, row -> n + row["inferences"] as Long }
        assertEquals("only the inference sent with the token: $mine", 1L, inferences)
        assertTrue("every report names the device's channel: $mine", mine.all { it["channel"] == "beta" })
    }

    @Test
    fun t7_switchingChannelsKeepsEachChannelsVersionsApart() {
        // beta is at manifest_version 3; stable's first manifest is version 1, which is not a rollback.
        publish("1.0.1", "fp32", channel = "stable")
        val stable = updater(channel = "stable").sync()
        assertEquals(stable.toString(), Outcome.INSTALLED, stable.outcome)
        assertEquals(1L, stable.manifestVersion)
        assertRuns("1.0.1", "fp32")
        // Back on beta, its unchanged manifest (same ETag) must not read as "nothing to do": the model changed.
        val back = updater().sync()
        assertEquals(back.toString(), Outcome.INSTALLED, back.outcome)
        assertRuns("1.2.0", "int8")
        assertEquals(Outcome.NOT_MODIFIED, updater().sync().outcome)
    }
}
