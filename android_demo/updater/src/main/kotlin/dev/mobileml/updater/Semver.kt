package dev.mobileml.updater

/** Semantic versions as mobile-ml orders them: MAJOR.MINOR.PATCH, a pre-release sorts before its release. */
object Semver {
    // mobile_ml/contracts/manifest.py's SEMVER: at most 9 digits per number, no empty or leading-zero numeric
    // pre-release identifier, no build metadata.
    private const val IDENT = "(0|[1-9][0-9]*|[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*)"
    internal val PATTERN = Regex("(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})(-$IDENT(\\.$IDENT)*)?")
    private const val MAX_LEN = 64

    fun isValid(text: String): Boolean = text.length <= MAX_LEN && PATTERN.matches(text)

    /** Negative, zero or positive as [a] sorts before, with or after [b]. Throws for an invalid version. */
    fun compare(a: String, b: String): Int {
        val x = parse(a)
        val y = parse(b)
        for (i in 0..2) {
            val c = x.numbers[i].compareTo(y.numbers[i])
            if (c != 0) return c
        }
        if (x.pre == null || y.pre == null) return if (x.pre == y.pre) 0 else if (x.pre == null) 1 else -1
        val n = minOf(x.pre.size, y.pre.size)
        for (i in 0 until n) {
            val c = comparePart(x.pre[i], y.pre[i])
            if (c != 0) return c
        }
        return x.pre.size.compareTo(y.pre.size)
    }

    private class Parsed(val numbers: List<java.math.BigInteger>, val pre: List<String>?)

    private fun parse(text: String): Parsed {
        require(isValid(text)) { "'$text' is not a semantic version" }
        val core = text.substringBefore('-')
        val pre = if (text.contains('-')) text.substringAfter('-').split('.') else null
        return Parsed(core.split('.').map { java.math.BigInteger(it) }, pre)
    }

    // Numeric identifiers sort numerically and before alphanumeric ones, which sort as strings.
    private fun comparePart(a: String, b: String): Int {
        val an = a.all { it in '0'..'9' }
        val bn = b.all { it in '0'..'9' }
        return when {
            an && bn -> java.math.BigInteger(a).compareTo(java.math.BigInteger(b))
            an -> -1
            bn -> 1
            else -> a.compareTo(b)
        }
    }

    private val RUNTIME = Regex("([0-9]{1,9})\\.([0-9]{1,9})\\.([0-9]{1,9})([\\s\\S]*)")

    /**
     * A runtime's version as a semantic version: `1.4.1` as is; `2.0.0-alpha` or a PEP 440 `2.3.0.dev20251101` /
     * `2.3.0rc1` as `X.Y.Z-0`, just before X.Y.Z (as `mobile_ml/client/fits.py`'s runtime_key). Null when it does not
     * start with MAJOR.MINOR.PATCH.
     */
    fun runtimeKey(text: String): String? {
        val m = RUNTIME.matchEntire(text) ?: return null
        val core = m.groupValues.subList(1, 4).joinToString(".") { it.toInt().toString() }
        return if (m.groupValues[4].isEmpty()) core else "$core-0"
    }
}
