package dev.mobileml.updater

import java.math.BigInteger
import java.security.PublicKey

/**
 * A manifest or file the device must not use. [reason] is a stable code shared with the Python reference client;
 * [field], for `malformed`, the dotted path of the value the validator refused (`rollout.halted`; empty: the JSON
 * itself or its schema).
 */
class Rejected(val reason: String, val detail: String, val field: String = "") : Exception("$reason: $detail")

/**
 * What a device checks before it trusts a manifest or a downloaded file, in the protocol's order (§5): size cap,
 * signature over the exact bytes, and only then parsing; then key, channel, freshness and rollback.
 * Tested on the same vectors (`tests/vectors/`) as `mobile_ml.publish.trust`.
 */
object Trust {
    const val BUCKETS = 10000

    fun checkManifest(raw: ByteArray, signature: ByteArray, key: PublicKey, nowMillis: Long, model: String,
                      channel: String, lastVersion: Long? = null, lastSha256: String? = null): Manifest {
        if (raw.size > Manifest.MAX_BYTES) throw Rejected("too_large", "${raw.size} bytes > ${Manifest.MAX_BYTES}")
        if (!Keys.verify(key, raw, signature)) {
            throw Rejected("bad_signature", "the signature does not verify with the trusted key")
        }
        val m = Manifest.parse(raw)
        if (m.keyId != Keys.keyId(key)) throw Rejected("wrong_key", "manifest names key ${m.keyId.take(16)}…")
        if (m.model != model || m.channel != channel) {
            throw Rejected("wrong_channel", "manifest is for ${m.model}/${m.channel}, not $model/$channel")
        }
        if (m.expiresMillis <= nowMillis) throw Rejected("expired", "expired at ${m.expires}")
        if (lastVersion != null) {
            val v = m.manifestVersion
            if (v < lastVersion) throw Rejected("rollback", "manifest_version $v < $lastVersion already seen")
            if (v == lastVersion && lastSha256 != null && Codec.sha256Hex(raw) != lastSha256) {
                throw Rejected("replay_different", "manifest_version $v seen before with other content")
            }
        }
        return m
    }

    /** A downloaded file must have exactly the signed length and sha256. */
    fun checkFile(data: ByteArray, entry: FileEntry) = checkDigest(data.size.toLong(), { Codec.sha256Hex(data) }, entry)

    /** The same check for content seen as its length and (computed only when the length is right) its sha256. */
    internal fun checkDigest(length: Long, sha256Hex: () -> String, entry: FileEntry) {
        if (length != entry.length) {
            throw Rejected("length_mismatch", "${entry.name}: $length bytes, signed ${entry.length}")
        }
        if (sha256Hex() != entry.sha256) {
            throw Rejected("hash_mismatch", "${entry.name}: sha256 differs from the signed one")
        }
    }

    /** First 8 bytes of sha256(salt ":" installId), unsigned big-endian, mod 10,000. */
    fun bucket(salt: String, installId: String): Int {
        val digest = Codec.sha256("$salt:$installId".toByteArray(Charsets.UTF_8))
        return BigInteger(1, digest.copyOf(8)).mod(BigInteger.valueOf(BUCKETS.toLong())).toInt()
    }

    /** In when bucket < round(percent × 100). Math.rint rounds half to even, as Python's round() does. */
    fun inRollout(percent: Double, salt: String, installId: String): Boolean =
        bucket(salt, installId) < Math.rint(percent * 100)

    /** In the rollout → the release; else the fallback. A halted rollout keeps only devices already on it. */
    fun selectRelease(m: Manifest, installId: String, currentVersion: String?): Release? {
        if (m.rollout.halted) return if (currentVersion == m.release.version) m.release else m.fallback
        return if (inRollout(m.rollout.percent, m.rollout.salt, installId)) m.release else m.fallback
    }

    /** The key id an unverified manifest claims: only to pick which rotation statement to fetch, never trusted. */
    fun claimedKeyId(raw: ByteArray): String? {
        val text = String(raw, 0, minOf(raw.size, Manifest.MAX_BYTES), Charsets.ISO_8859_1)
        return Regex("\"key_id\":\\s*\"([0-9a-f]{64})\"").find(text)?.groupValues?.get(1)
    }
}
