package dev.mobileml.updater

import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.PublicKey
import java.security.spec.ECGenParameterSpec
import java.util.Random

/**
 * The device mends itself (docs/update-protocol.md §5.1, issue 12 items 7, 8, 17 and the telemetry token): a
 * damaged state.json is rebuilt from its backup without forgetting the anti-rollback floor or a rotated key,
 * damaged installed files are downloaded again, a release needing a newer LiteRT is skipped before any download,
 * and telemetry carries the ingest token.
 */
class DeviceRepairTest {
    private fun newKey(): KeyPair = KeyPairGenerator.getInstance("EC").also {
        it.initialize(ECGenParameterSpec("secp256r1"))
    }.generateKeyPair()

    private val keyPair = newKey()
    private val tmp = java.nio.file.Files.createTempDirectory("updater-repair").toFile()
    private val state = File(tmp, "device")
    private val model = ByteArray(32 * 1024).also { Random(11).nextBytes(it) }
    private val server = LoopbackServer(keyPair, model, "{}".toByteArray())
    private val stateFile = File(state, "state.json")
    private val backup = File(state, "state.backup.json")

    @After
    fun stop() {
        server.close()
        tmp.deleteRecursively()
    }

    private fun updater(pinned: PublicKey = keyPair.public, runtime: String? = UpdaterConfig.LITERT_VERSION,
                        token: String? = null, telemetry: Boolean = false): Updater {
        val config = UpdaterConfig(server.url, "digits", "stable", Keys.toBase64(pinned), state, "device-1", "1.0.0",
                                   timeoutMillis = 5000, sendTelemetry = telemetry, runtimeVersion = runtime,
                                   telemetryToken = token)
        return Updater(config, object : HealthCheck {
            override fun check(model: File, metadata: Map<String, Any?>) = HealthResult(true, "ok")
        })
    }

    private fun installed(version: String): SyncResult {
        val r = updater().sync()
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertEquals(version, r.current)
        return r
    }

    @Test(timeout = 60000)
    fun aDamagedStateIsRebuiltFromItsBackupAndAReplayIsStillARollback() {
        installed("1.0.0")  // manifest_version 5
        assertArrayEquals("every save writes both copies", stateFile.readBytes(), backup.readBytes())
        server.publish("1.0.0", 4)  // a validly signed older manifest, replayed
        for (damage in listOf("{", "", "[]", "{\"channels\":[]}", null)) {
            if (damage == null) stateFile.delete() else stateFile.writeText(damage)
            val r = updater().sync()
            assertEquals("state '$damage': $r", Outcome.REJECTED, r.outcome)
            assertEquals("state '$damage'", "rollback", r.reason)
            assertEquals("state '$damage'", listOf(Repair.STATE_REBUILT), r.repairs)
            assertEquals("1.0.0", r.current)
            if (damage != null) assertEquals("set aside for a look", damage, File(state, "state.json.damaged").readText())
            assertArrayEquals(stateFile.readBytes(), backup.readBytes())
            assertEquals("1.0.0", updater().current()!!.version)
        }
        val r = updater().sync()  // whole again: no repair to report
        assertEquals(r.toString(), "rollback", r.reason)
        assertEquals(emptyList<Repair>(), r.repairs)
    }

    @Test(timeout = 60000)
    fun bothCopiesUnreadableFailsClosedAndTouchesNeither() {
        installed("1.0.0")
        stateFile.writeText("{")
        backup.writeText("[]")
        val r = updater().sync()
        assertEquals(r.toString(), Outcome.FAILED, r.outcome)
        assertEquals("state_unreadable", r.reason)
        assertTrue(r.detail, r.detail.contains("its backup too"))
        assertEquals("{", stateFile.readText())
        assertEquals("[]", backup.readText())
        assertTrue(!File(state, "state.json.damaged").exists())
    }

    @Test(timeout = 60000)
    fun aRotatedKeySurvivesTheRebuild() {
        // The app pins an old key; the device had followed a rotation to the server's key (trusted_key_b64).
        val old = newKey().public
        val fresh = updater(pinned = old).sync()
        assertEquals("without the rotated key the manifest does not verify: $fresh", "bad_signature", fresh.reason)
        state.deleteRecursively()
        state.mkdirs()
        backup.writeText("{\"trusted_key_b64\":\"${Keys.toBase64(keyPair.public)}\"}")
        stateFile.writeText("\u0000garbage")
        val r = updater(pinned = old).sync()
        assertEquals(r.toString(), Outcome.INSTALLED, r.outcome)
        assertEquals(listOf(Repair.STATE_REBUILT), r.repairs)
    }

    @Test(timeout = 60000)
    fun damagedInstalledFilesAreDownloadedAgainKeepingThePrevious() {
        installed("1.0.0")
        server.publish("1.1.0", 6)
        assertEquals("1.0.0", installed("1.1.0").previous)
        val vdir = File(state, "versions/1.1.0")
        assertTrue("the verified release is kept with the files", File(vdir, ".release.json").isFile)
        val damages = listOf<Pair<String, () -> Unit>>(
            "a flipped byte" to { flip(File(vdir, "model.tflite")) },
            "a truncated model" to { File(vdir, "model.tflite").writeBytes(model.copyOf(100)) },
            "no metadata.json" to { File(vdir, "metadata.json").delete(); Unit },
            "a damaged .release.json" to { File(vdir, ".release.json").writeText("{") },
            "no version directory" to { vdir.deleteRecursively(); Unit },
            "no current.json" to { File(state, "current.json").delete(); Unit },
            "a garbled current.json" to { File(state, "current.json").writeText("{\"version\":\"../1.0.0\"}") })
        for ((what, damage) in damages) {
            damage()
            assertNull("$what: the app must not load it", updater().current())
            val r = updater().sync()
            assertEquals("$what: $r", Outcome.INSTALLED, r.outcome)
            assertEquals(what, listOf(Repair.MODEL_REINSTALLED), r.repairs)
            assertEquals(what, "1.1.0", r.current)
            assertEquals("$what: the previous version is kept", "1.0.0", r.previous)
            assertArrayEquals(what, model, updater().current()!!.modelFile.readBytes())
            assertTrue(what, File(state, "versions/1.0.0/model.tflite").isFile)
        }
        val again = updater().sync()
        assertEquals(again.toString(), Outcome.UP_TO_DATE, again.outcome)
        assertEquals(emptyList<Repair>(), again.repairs)
    }

    @Test(timeout = 60000)
    fun aDamagedModelThatCannotBeReinstalledIsNotRun() {
        installed("1.0.0")
        flip(File(state, "versions/1.0.0/model.tflite"))
        server.blobMode = LoopbackServer.Mode.STALL
        val r = Updater(UpdaterConfig(server.url, "digits", "stable", Keys.toBase64(keyPair.public), state, "device-1",
                                      "1.0.0", sendTelemetry = false, checkDeadlineMillis = 1000), object : HealthCheck {
            override fun check(model: File, metadata: Map<String, Any?>) = HealthResult(true, "ok")
        }).sync()
        assertEquals(r.toString(), "network", r.reason)
        assertNull("no whole downloaded model: the app runs its bundled one", r.current)
        assertEquals(emptyList<Repair>(), r.repairs)
        assertNull(updater().current())
    }

    private fun flip(file: File) {
        val b = file.readBytes()
        b[b.size / 2] = (b[b.size / 2].toInt() xor 1).toByte()
        file.writeBytes(b)
    }

    @Test(timeout = 60000)
    fun aReleaseNeedingANewerRuntimeIsSkippedBeforeDownload() {
        // The release needs LiteRT >= 1.0.0 (LoopbackServer's runtime.min_version).
        for (runtime in listOf("0.9.9", "1.0.0-rc1", "1.0.0rc1", "1.0.0.dev20251101", "1.0", "", null)) {
            state.deleteRecursively()
            val r = updater(runtime = runtime).sync()
            assertEquals("LiteRT '$runtime': $r", Outcome.SKIPPED, r.outcome)
            assertEquals("LiteRT '$runtime'", "runtime", r.reason)
        }
        assertTrue("nothing downloaded: ${server.requests}", server.requests.none { it.startsWith("GET blob") })
        for (runtime in listOf("1.0.0", "1.0.1", "01.0.0", "2.3.0.post1")) {
            state.deleteRecursively()
            val r = updater(runtime = runtime).sync()
            assertEquals("LiteRT '$runtime': $r", Outcome.INSTALLED, r.outcome)
        }
    }

    @Test
    fun runtimeVersionsCompareAsPythonsRuntimeKey() {
        assertEquals("2.3.0", Semver.runtimeKey("2.3.0"))
        assertEquals("2.3.0-0", Semver.runtimeKey("2.3.0.dev20251101"))
        assertEquals("2.3.0-0", Semver.runtimeKey("2.3.0rc1"))
        assertEquals("1.2.3", Semver.runtimeKey("01.02.03"))
        assertNull(Semver.runtimeKey("2.3"))
        assertNull(Semver.runtimeKey("v2.3.0"))
        assertTrue(Semver.compare("2.3.0", Semver.runtimeKey("2.3.0rc1")!!) > 0)
    }

    @Test(timeout = 30000)
    fun telemetryCarriesTheIngestToken() {
        val token = "tok-" + "x".repeat(28)
        assertEquals(Outcome.INSTALLED, updater(token = token, telemetry = true).sync().outcome)
        assertEquals(listOf("Bearer $token"), server.telemetryAuth.toList())
        state.deleteRecursively()
        updater(telemetry = true).sync()
        assertEquals("no token configured: no header", listOf("Bearer $token", ""), server.telemetryAuth.toList())
        for (bad in listOf("short", "x".repeat(20) + "\r\nX-Evil: 1", "x".repeat(257))) {
            val refused = try {
                updater(token = bad)
                false
            } catch (e: IllegalArgumentException) {
                true
            }
            assertTrue("token '$bad' must be refused", refused)
        }
    }
}
