package dev.mobileml.updater

import java.security.KeyFactory
import java.security.PublicKey
import java.security.Signature
import java.security.spec.X509EncodedKeySpec

/**
 * The pinned key and signature checks: ECDSA P-256 with SHA-256, DER signatures (`SHA256withECDSA`, in every
 * Android `java.security`). The key id is the lowercase hex sha256 of the SubjectPublicKeyInfo DER, as
 * `mobile-ml keys generate` writes it to key.json.
 */
object Keys {
    /** `public.b64` from `mobile-ml keys generate`. Throws IllegalArgumentException for anything else. */
    fun fromBase64(b64: String): PublicKey {
        val der = try {
            Codec.base64Decode(b64)
        } catch (e: IllegalArgumentException) {
            throw IllegalArgumentException("the public key is not base64: ${e.message}")
        }
        try {
            val key = KeyFactory.getInstance("EC").generatePublic(X509EncodedKeySpec(der))
            val params = (key as java.security.interfaces.ECPublicKey).params
            require(params.curve.field.fieldSize == 256) { "the public key is not on P-256" }
            return key
        } catch (e: java.security.GeneralSecurityException) {
            throw IllegalArgumentException("the public key is not an EC SubjectPublicKeyInfo: ${e.message}")
        } catch (e: ClassCastException) {
            throw IllegalArgumentException("the public key is not an EC key")
        }
    }

    fun keyId(key: PublicKey): String = Codec.sha256Hex(key.encoded)

    fun toBase64(key: PublicKey): String = Codec.base64Encode(key.encoded)

    /** True only for a valid signature of exactly [data]; malformed signatures are false, never exceptions. */
    fun verify(key: PublicKey, data: ByteArray, signature: ByteArray): Boolean {
        if (signature.isEmpty()) return false
        return try {
            val v = Signature.getInstance("SHA256withECDSA")
            v.initVerify(key)
            v.update(data)
            v.verify(signature)
        } catch (e: java.security.SignatureException) {
            false
        } catch (e: IllegalArgumentException) {
            false
        }
    }
}
