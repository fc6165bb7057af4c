package dev.mobileml.updater

/**
 * Typed field access for the strict validators, the Kotlin twin of `mobile_ml/contracts/_fields.py`: every read
 * names its field, checks its type and range exactly (`"false"` is not a boolean, `50.9` not an integer), and a
 * closed object refuses keys it does not name ([done]). A refusal is `Rejected("malformed", ..., field)` where
 * `field` is the dotted path Python reports (`rollout.halted`, `release.files[0].name`).
 *
 * Strings are measured in code points and matched whole, as Python's `len` and `re.fullmatch` do.
 */
internal class Fields(raw: Any?, val where: String) {
    val raw: Map<*, *> = raw as? Map<*, *> ?: throw error("", "expected an object, got ${kind(raw)}")
    private val seen = HashSet<String>()

    fun error(key: String, problem: String): Rejected {
        val path = if (key.isNotEmpty() && where.isNotEmpty()) "$where.$key" else if (key.isNotEmpty()) key else where
        return Rejected("malformed", "$path: $problem", path)
    }

    /** The raw value; a missing key is refused unless [optional] (then null). */
    fun value(key: String, optional: Boolean = false): Any? {
        seen.add(key)
        if (!raw.containsKey(key)) {
            if (optional) return null
            throw error(key, "missing")
        }
        return raw[key]
    }

    fun string(key: String, pattern: Regex? = null, maxLen: Int = 4096): String {
        val v = value(key) as? String ?: throw error(key, "expected a string, got ${kind(raw[key])}")
        if (v.codePointCount(0, v.length) > maxLen) throw error(key, "longer than $maxLen characters")
        if (pattern != null && !pattern.matches(v)) throw error(key, "'${v.take(60)}' does not match ${pattern.pattern}")
        return v
    }

    fun integer(key: String, lo: Long, hi: Long): Long {
        val v = value(key) as? Long ?: throw error(key, "expected an integer, got ${kind(raw[key])}")
        if (v < lo || v > hi) throw error(key, "$v is outside [$lo, $hi]")
        return v
    }

    fun number(key: String, lo: Double, hi: Double): Double {
        val v = value(key)
        val d = when (v) {
            is Long -> v.toDouble()
            is Double -> v
            else -> throw error(key, "expected a finite number, got ${kind(v)}")
        }
        if (d.isNaN() || d.isInfinite()) throw error(key, "expected a finite number, got ${kind(v)}")
        if (d < lo || d > hi) throw error(key, "$d is outside [$lo, $hi]")
        return d
    }

    /** A number or null (writers store NaN as null). */
    fun optNumber(key: String, lo: Double, hi: Double): Double? {
        if (raw[key] == null) {
            seen.add(key)
            return null
        }
        return number(key, lo, hi)
    }

    fun optString(key: String, pattern: Regex? = null, maxLen: Int = 4096): String? {
        if (raw[key] == null) {
            seen.add(key)
            return null
        }
        return string(key, pattern, maxLen)
    }

    fun boolean(key: String): Boolean =
        value(key) as? Boolean ?: throw error(key, "expected true or false, got ${kind(raw[key])}")

    /** A required object: null is refused, not read as an empty object (manifest.py's `obj`). */
    fun obj(key: String): Fields {
        if (value(key) == null) throw error(key, if (raw.containsKey(key)) "expected an object, got null" else "missing")
        return Fields(raw[key], child(key))
    }

    /** An object or null, both required to be present (Python's `Fields.obj` of a value that may be null). */
    fun objOrNull(key: String): Fields? = if (value(key) == null) null else Fields(raw[key], child(key))

    /** Each item of a list of objects, read one by one (an error names the first bad item, as Python does). */
    fun <T> eachObj(key: String, maxLen: Int, read: (Fields) -> T): List<T> {
        val v = value(key) as? List<*> ?: throw error(key, "expected a list, got ${kind(raw[key])}")
        if (v.size > maxLen) throw error(key, "more than $maxLen items")
        return v.mapIndexed { i, item -> read(Fields(item, "${child(key)}[$i]")) }
    }

    /** A free-form object kept as a map: only for parts of a document that are data, not contract. */
    fun mapping(key: String): Map<String, Any?> {
        val v = value(key) as? Map<*, *> ?: throw error(key, "expected an object, got ${kind(raw[key])}")
        @Suppress("UNCHECKED_CAST")
        return v as Map<String, Any?>
    }

    /** Refuse keys the contract does not name (call last): the first unknown one in sorted order is named. */
    fun done() {
        val unknown = raw.keys.map { it.toString() }.filter { it !in seen }.sorted()
        if (unknown.isNotEmpty()) throw error(unknown[0], "unknown field")
    }

    private fun child(key: String) = if (where.isEmpty()) key else "$where.$key"

    companion object {
        fun kind(v: Any?): String = when (v) {
            null -> "null"
            is Boolean -> "a boolean"
            is Number -> "the number $v".take(60)
            is String -> "the string '${v.take(40)}'"
            is List<*> -> "a list"
            is Map<*, *> -> "an object"
            else -> v.javaClass.simpleName
        }
    }
}
