package dev.mobileml.updater

import java.security.PublicKey

/**
 * Key rotation (`docs/update-protocol.md` §1): the key the device trusts signs a statement
 * `<model>/keys/<new_key_id>.json` naming the new key. Followed one statement per check.
 */
object Rotation {
    const val SCHEMA = "mobile_ml.key_rotation"
    const val MAX_BYTES = 16 * 1024
    private val B64_KEY = Regex("[A-Za-z0-9+/]{40,1024}={0,2}")

    fun statementPath(model: String, newKeyId: String): String = "$model/keys/$newKeyId.json"

    /** The new key, if [data] is a valid rotation from [trusted] to [newKeyId] for [model]; else null. */
    fun checkStatement(data: ByteArray, signature: ByteArray, trusted: PublicKey, model: String,
                       newKeyId: String): PublicKey? {
        if (data.size > MAX_BYTES || !Keys.verify(trusted, data, signature)) return null
        return try {
            val s = parse(data)
            val newKey = Keys.fromBase64(s.newKeyB64)
            val ok = s.model == model && s.oldKeyId == Keys.keyId(trusted) && s.newKeyId == newKeyId &&
                newKeyId == Keys.keyId(newKey)  // the key as loaded, not only its DER as sent
            if (ok) newKey else null
        } catch (e: Rejected) {
            null
        } catch (e: IllegalArgumentException) {
            null
        }
    }

    internal class Statement(val model: String, val oldKeyId: String, val newKeyId: String, val newKeyB64: String)

    /** The strict validator of a statement, in the order of `mobile_ml.contracts.manifest.KeyRotation`. */
    internal fun parse(data: ByteArray): Statement {
        val f = Documents.open(data, SCHEMA, "key rotation")
        val model = f.string("model", Manifest.NAME)
        val oldId = f.string("old_key_id", Manifest.SHA256, 64)
        val oldB64 = f.string("old_public_key_b64", B64_KEY, 1026)
        val newId = f.string("new_key_id", Manifest.SHA256, 64)
        val newB64 = f.string("new_public_key_b64", B64_KEY, 1026)
        Manifest.readTime(f, "issued_at")
        f.done()
        for ((which, b64, id) in listOf(Triple("old", oldB64, oldId), Triple("new", newB64, newId))) {
            if (keyIdOf(b64) != id) throw f.error("${which}_key_id", "is not the sha256 of ${which}_public_key_b64")
        }
        if (oldId == newId) throw f.error("new_key_id", "is the old key")
        Keys.fromBase64(oldB64)  // both keys must load, as parse_statement loads them
        return Statement(model, oldId, newId, newB64)
    }

    // Python decodes with validate=True: whole 4-character groups only.
    private fun keyIdOf(b64: String): String? = try {
        if (b64.length % 4 != 0) null else Codec.sha256Hex(Codec.base64Decode(b64))
    } catch (e: IllegalArgumentException) {
        null
    }
}
