package dev.mobileml.updater

import java.security.PublicKey

/**
 * Key rotation (`docs/update-protocol.md` §1): the key the device trusts signs a statement
 * `<model>/keys/<new_key_id>.json` naming the new key. Followed one statement per check.
 */
object Rotation {
    const val SCHEMA = "mobile_ml.key_rotation"
    const val MAX_BYTES = 16 * 1024

    fun statementPath(model: String, newKeyId: String): String = "$model/keys/$newKeyId.json"

    /** The new key, if [data] is a valid rotation from [trusted] to [newKeyId] for [model]; else null. */
    fun checkStatement(data: ByteArray, signature: ByteArray, trusted: PublicKey, model: String,
                       newKeyId: String): PublicKey? {
        if (data.size > MAX_BYTES || !Keys.verify(trusted, data, signature)) return null
        return try {
            val doc = Json.parseObject(data)
            val newKey = Keys.fromBase64(doc["new_public_key_b64"] as? String ?: return null)
            val ok = doc["schema"] == SCHEMA && doc["model"] == model && doc["old_key_id"] == Keys.keyId(trusted) &&
                doc["new_key_id"] == newKeyId && newKeyId == Keys.keyId(newKey)
            if (ok) newKey else null
        } catch (e: Json.ParseError) {
            null
        } catch (e: IllegalArgumentException) {
            null
        }
    }
}
