package dev.mobileml.updater

import java.io.File
import java.security.SecureRandom

/** One queued inference: the input as the app fed it (flattened), the top prediction and, once given, the label. */
class CapturedSample(val sampleId: String, val timeMillis: Long, val version: String, val input: DoubleArray,
                     val prediction: String, val confidence: Double, val label: String?) {
    fun withLabel(label: String?) = CapturedSample(sampleId, timeMillis, version, input, prediction, confidence, label)

    internal fun toMap(): Map<String, Any?> = linkedMapOf(
        "sample_id" to sampleId, "time" to Manifest.formatTime(timeMillis), "version" to version,
        "input" to input.toList(), "prediction" to prediction, "confidence" to confidence, "label" to label)
}

/** `capture.json`, the same document (`mobile_ml.capture_state` v1) as `mobile_ml/client/capture.py` keeps. */
class CaptureState(val consent: Boolean = false, val model: String? = null, val channel: String? = null,
                   val installIdHash: String? = null, val policy: CapturePolicy? = null, val inferences: Long = 0,
                   val day: String? = null, val takenToday: Long = 0, val queue: List<CapturedSample> = emptyList()) {
    internal fun copy(consent: Boolean = this.consent, model: String? = this.model, channel: String? = this.channel,
                      installIdHash: String? = this.installIdHash, policy: CapturePolicy? = this.policy,
                      inferences: Long = this.inferences, day: String? = this.day, takenToday: Long = this.takenToday,
                      queue: List<CapturedSample> = this.queue) =
        CaptureState(consent, model, channel, installIdHash, policy, inferences, day, takenToday, queue)

    internal fun toMap(): Map<String, Any?> = linkedMapOf(
        "schema" to SCHEMA, "schema_version" to 1L, "consent" to consent, "model" to model, "channel" to channel,
        "install_id_hash" to installIdHash,
        "policy" to policy?.let { linkedMapOf("rate" to it.rate, "max_per_day" to it.maxPerDay, "requires_consent" to true) },
        "inferences" to inferences, "day" to day, "taken_today" to takenToday, "queue" to queue.map { it.toMap() })

    companion object {
        const val SCHEMA = "mobile_ml.capture_state"
        private val HEX = Regex("[0-9a-f]{64}")
        private val SAMPLE_ID = Regex("[0-9a-f]{32}")
        private val DAY = Regex("[0-9]{4}-[0-9]{2}-[0-9]{2}")

        internal fun parse(bytes: ByteArray): CaptureState {
            val f = Fields(Json.parseObject(bytes), "")
            if (f.string("schema") != SCHEMA) throw f.error("schema", "not a capture state")
            f.integer("schema_version", 1, 1)
            val p = f.objOrNull("policy")
            val policy = p?.let {
                val c = CapturePolicy(it.number("rate", 0.0, 1.0), it.integer("max_per_day", 0, Manifest.MAX_CAPTURE_PER_DAY),
                                      it.boolean("requires_consent"))
                it.done()
                c
            }
            val st = CaptureState(
                f.boolean("consent"), f.optString("model", Manifest.NAME), f.optString("channel", Manifest.NAME),
                f.optString("install_id_hash", HEX, 64), policy, f.integer("inferences", 0, Long.MAX_VALUE),
                f.optString("day", DAY, 10), f.integer("taken_today", 0, Long.MAX_VALUE),
                f.eachObj("queue", 1000) { s -> readSample(s) })
            f.done()
            return st
        }

        private fun readSample(f: Fields): CapturedSample {
            val input = (f.value("input") as? List<*> ?: throw f.error("input", "expected an array")).mapIndexed { i, v ->
                when (v) {
                    is Long -> v.toDouble()
                    is Double -> v
                    else -> throw f.error("input[$i]", "expected a finite number")
                }
            }.toDoubleArray()
            val s = CapturedSample(f.string("sample_id", SAMPLE_ID, 32), Manifest.parseTime(f.string("time")),
                                   f.string("version", Semver.PATTERN, 64), input, f.string("prediction", null, 256),
                                   f.number("confidence", 0.0, 1.0), f.optString("label", null, 256))
            f.done()
            return s
        }
    }
}

/**
 * Capture on the device, with consent: the Kotlin twin of `mobile_ml/client/capture.py`, decision for decision
 * (`tests/vectors/capture.json` replays the same sessions through both). Nothing is queued unless the user consented
 * ([setConsent]) *and* the last accepted manifest has a policy that is on ([noteManifest]); revoking consent deletes
 * the queue at once, and so does a policy switched off or another channel. Inference `n` is sampled when
 * [draw] < rate, at most `max_per_day` per UTC day and [MAX_QUEUE] waiting. [upload] clears a batch only on 202.
 *
 * One object per state directory; every method is synchronized (inference thread, settings screen, sync worker).
 */
class CaptureQueue(private val stateDir: File, private val clock: () -> Long = { System.currentTimeMillis() }) {
    private val file = File(stateDir, FILE)

    /** The stored state; a missing or damaged file is no consent and an empty queue (fail closed). */
    @Synchronized
    fun state(): CaptureState = try {
        if (file.isFile) CaptureState.parse(file.readBytes()) else CaptureState()
    } catch (e: Rejected) {
        CaptureState()
    } catch (e: Json.ParseError) {
        CaptureState()
    } catch (e: java.io.IOException) {
        CaptureState()
    }

    private fun save(st: CaptureState) {
        stateDir.mkdirs()
        Store.writeAtomic(file, Json.write(st.toMap()).toByteArray(Charsets.UTF_8))
    }

    /** Record the user's choice; revoking it deletes every queued sample. */
    @Synchronized
    fun setConsent(consent: Boolean): CaptureState {
        val st = state()
        return st.copy(consent = consent, queue = if (consent) st.queue else emptyList()).also { save(it) }
    }

    /** After a verified manifest: remember its policy; a policy switched off, or another channel, drops the queue. */
    @Synchronized
    fun noteManifest(model: String, channel: String, installId: String, policy: CapturePolicy?): CaptureState {
        val st = state()
        val same = st.model == model && st.channel == channel
        val keep = same && policy != null && policy.on
        val hash = Codec.sha256Hex(installId.toByteArray(Charsets.UTF_8))
        return st.copy(model = model, channel = channel, installIdHash = hash, policy = policy,
                       queue = if (keep) st.queue else emptyList()).also { save(it) }
    }

    /**
     * One inference: queued when the user consented, the policy is on, the draw falls under the rate and today's
     * budget is not spent. Returns the queued sample's id (to attach the user's answer with [label]), else null.
     */
    @Synchronized
    fun offer(input: DoubleArray, version: String, prediction: String, confidence: Double, label: String? = null): String? {
        var st = state()
        val policy = st.policy
        val install = st.installIdHash
        if (!st.consent || policy == null || !policy.on || install.isNullOrEmpty()) return null
        val now = clock() / 1000 * 1000  // whole seconds, as Python's replace(microsecond=0)
        val day = Manifest.formatTime(now).substring(0, 10)
        val taken = if (st.day == day) st.takenToday else 0L
        val n = st.inferences
        st = st.copy(inferences = n + 1, day = day, takenToday = taken)
        var id: String? = null
        if (draw(install, n) < policy.rate && taken < policy.maxPerDay && st.queue.size < MAX_QUEUE &&
            input.all { !it.isNaN() && !it.isInfinite() }) {
            val sample = CapturedSample(newId(), now, version, input.copyOf(), prediction, confidence, label)
            // an input too large for one request is never captured
            if (Json.write(sample.toMap()).length <= MAX_BODY_BYTES - 1024) {
                st = st.copy(takenToday = taken + 1, queue = st.queue + sample)
                id = sample.sampleId
            }
        }
        save(st)
        return id
    }

    /** The user's answer to "was this right?" for a queued sample; false when it is no longer queued. */
    @Synchronized
    fun label(sampleId: String, label: String): Boolean {
        val st = state()
        if (st.queue.none { it.sampleId == sampleId }) return false
        save(st.copy(queue = st.queue.map { if (it.sampleId == sampleId) it.withLabel(label) else it }))
        return true
    }

    /** The queue cut into `mobile_ml.capture_batch` bodies that each fit one request (at most 100 samples). */
    @Synchronized
    fun batches(): List<List<CapturedSample>> {
        val out = ArrayList<List<CapturedSample>>()
        var current = ArrayList<CapturedSample>()
        var size = ENVELOPE
        for (s in state().queue) {
            val n = Json.write(s.toMap()).toByteArray(Charsets.UTF_8).size + 2
            if (current.isNotEmpty() && (size + n > MAX_BODY_BYTES || current.size >= MAX_BATCH)) {
                out.add(current)
                current = ArrayList()
                size = ENVELOPE
            }
            current.add(s)
            size += n
        }
        if (current.isNotEmpty()) out.add(current)
        return out
    }

    /**
     * Send the queue to `POST /v1/capture`; each batch the server stored (202) leaves the queue. Without consent or
     * with the policy off nothing is sent. Returns the samples stored; never throws for the network or the server.
     */
    @Synchronized
    fun upload(config: UpdaterConfig): Int {
        val st = state()
        if (!st.consent || st.policy?.on != true || st.queue.isEmpty()) return 0
        val headers = config.telemetryToken?.let { mapOf("Authorization" to "Bearer $it") } ?: emptyMap()
        val sent = HashSet<String>()
        val pace = Pace.start(config)
        for (batch in batches()) {
            val body = linkedMapOf("schema" to "mobile_ml.capture_batch", "schema_version" to 1L, "model" to st.model,
                                   "channel" to st.channel, "install_id_hash" to st.installIdHash,
                                   "consent" to st.consent, "samples" to batch.map { it.toMap() })
            val status = try {
                Http(config.baseUrl, config.timeoutMillis) { pace }.post(
                    "v1/capture", "application/json", Json.write(body).toByteArray(Charsets.UTF_8), headers)
            } catch (e: java.io.IOException) {
                break  // kept for the next sync
            } catch (e: UpdateFailed) {
                break
            }
            if (status != 202) break
            batch.mapTo(sent) { it.sampleId }
        }
        if (sent.isNotEmpty()) {
            val now = state()
            save(now.copy(queue = now.queue.filter { it.sampleId !in sent }))
        }
        return sent.size
    }

    companion object {
        const val FILE = "capture.json"
        const val MAX_QUEUE = 200  // samples waiting for an upload; past it nothing more is taken until it drains
        const val MAX_BODY_BYTES = 64 * 1024  // the server's bound on one POST: batches are cut to fit
        const val MAX_BATCH = 100  // samples per POST /v1/capture (mobile_ml/contracts/capture.py)
        private const val ENVELOPE = 512
        private val random = SecureRandom()

        /**
         * The [n]-th inference's uniform draw in [0, 1): sha256("capture:" hash ":" n), the first 8 bytes as an
         * unsigned big-endian integer, divided by 2^64 after rounding it to a double as Python's int / float does.
         */
        fun draw(installIdHash: String, n: Long): Double {
            val d = Codec.sha256("capture:$installIdHash:$n".toByteArray(Charsets.UTF_8))
            var v = 0L
            for (i in 0 until 8) v = (v shl 8) or (d[i].toLong() and 0xff)
            // unsigned to double, correctly rounded: halve keeping the lost bit sticky, convert, double again
            val u = if (v >= 0) v.toDouble() else ((v ushr 1) or (v and 1)).toDouble() * 2.0
            return u / TWO_64
        }

        private const val TWO_64 = 18446744073709551616.0

        private fun newId(): String =
            ByteArray(16).also { random.nextBytes(it) }.joinToString("") { "%02x".format(it.toInt() and 0xff) }
    }
}
