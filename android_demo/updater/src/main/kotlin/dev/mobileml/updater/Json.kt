package dev.mobileml.updater

/**
 * A small, strict JSON reader and writer (RFC 8259), so the updater needs no library: org.json exists on Android but
 * not on a plain JVM, where this module is also built and tested.
 *
 * Objects become `Map<String, Any?>` (insertion order kept), arrays `List<Any?>`, integers without a fraction or
 * exponent `Long`, other numbers `Double`. Nesting is limited so a hostile document cannot exhaust the stack.
 */
object Json {
    private const val MAX_DEPTH = 32  // as mobile_ml/contracts/_json.py: our documents nest a handful of levels
    private const val MAX_INT_DIGITS = 19  // a signed 64-bit integer, as _json.py

    class ParseError(message: String) : Exception(message)

    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipSpace()
        val value = p.value(0)
        p.skipSpace()
        if (p.pos != text.length) throw ParseError("unexpected data at offset ${p.pos}")
        return value
    }

    fun parseObject(bytes: ByteArray): Map<String, Any?> {
        val text = decodeUtf8(bytes)
        @Suppress("UNCHECKED_CAST")
        return parse(text) as? Map<String, Any?> ?: throw ParseError("not a JSON object")
    }

    fun decodeUtf8(bytes: ByteArray): String {
        val decoder = Charsets.UTF_8.newDecoder()  // REPORT (the default) on malformed input, unlike String(bytes)
        try {
            return decoder.decode(java.nio.ByteBuffer.wrap(bytes)).toString()
        } catch (e: java.nio.charset.CharacterCodingException) {
            throw ParseError("not UTF-8")
        }
    }

    private class Parser(val s: String) {
        var pos = 0

        fun skipSpace() {
            while (pos < s.length && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\r' || s[pos] == '\t')) pos++
        }

        fun fail(what: String): Nothing = throw ParseError("$what at offset $pos")

        fun value(depth: Int): Any? {
            if (pos >= s.length) fail("unexpected end")
            return when (s[pos]) {
                '{' -> obj(depth)
                '[' -> arr(depth)
                '"' -> str()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> num()
            }
        }

        fun literal(word: String, v: Any?): Any? {
            if (!s.startsWith(word, pos)) fail("invalid literal")
            pos += word.length
            return v
        }

        // [depth] containers enclose this one; Python refuses the 33rd level.
        fun obj(depth: Int): Map<String, Any?> {
            if (depth >= MAX_DEPTH) fail("nested deeper than $MAX_DEPTH levels")
            val out = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (pos < s.length && s[pos] == '}') { pos++; return out }
            while (true) {
                skipSpace()
                if (pos >= s.length || s[pos] != '"') fail("expected a key")
                val key = str()
                skipSpace()
                if (pos >= s.length || s[pos] != ':') fail("expected ':'")
                pos++
                skipSpace()
                if (out.containsKey(key)) fail("duplicate key '$key'")  // ambiguous documents are refused
                out[key] = value(depth + 1)
                skipSpace()
                if (pos >= s.length) fail("unexpected end")
                when (s[pos++]) {
                    ',' -> {}
                    '}' -> return out
                    else -> { pos--; fail("expected ',' or '}'") }
                }
            }
        }

        fun arr(depth: Int): List<Any?> {
            if (depth >= MAX_DEPTH) fail("nested deeper than $MAX_DEPTH levels")
            val out = ArrayList<Any?>()
            pos++
            skipSpace()
            if (pos < s.length && s[pos] == ']') { pos++; return out }
            while (true) {
                skipSpace()
                out.add(value(depth + 1))
                skipSpace()
                if (pos >= s.length) fail("unexpected end")
                when (s[pos++]) {
                    ',' -> {}
                    ']' -> return out
                    else -> { pos--; fail("expected ',' or ']'") }
                }
            }
        }

        fun str(): String {
            pos++  // opening quote
            val sb = StringBuilder()
            while (true) {
                if (pos >= s.length) fail("unterminated string")
                val c = s[pos++]
                when {
                    c == '"' -> return checkSurrogates(sb.toString())
                    c == '\\' -> {
                        if (pos >= s.length) fail("unterminated string")
                        when (s[pos++]) {
                            '"' -> sb.append('"')
                            '\\' -> sb.append('\\')
                            '/' -> sb.append('/')
                            'b' -> sb.append('\b')
                            'f' -> sb.append('\u000c')
                            'n' -> sb.append('\n')
                            'r' -> sb.append('\r')
                            't' -> sb.append('\t')
                            'u' -> {
                                if (pos + 4 > s.length) fail("bad \\u escape")
                                val code = s.substring(pos, pos + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                                sb.append(code.toChar())
                                pos += 4
                            }
                            else -> fail("bad escape")
                        }
                    }
                    c < ' ' -> fail("control character in string")
                    else -> sb.append(c)
                }
            }
        }

        // "\ud800" alone decodes but cannot be encoded back to UTF-8 or stored: refused, as Python refuses it.
        fun checkSurrogates(text: String): String {
            var i = 0
            while (i < text.length) {
                val c = text[i]
                if (Character.isHighSurrogate(c) && i + 1 < text.length && Character.isLowSurrogate(text[i + 1])) {
                    i += 2
                    continue
                }
                if (Character.isSurrogate(c)) fail("string with an unpaired surrogate")
                i++
            }
            return text
        }

        fun num(): Any {
            val start = pos
            if (pos < s.length && s[pos] == '-') pos++
            if (pos >= s.length || s[pos] !in '0'..'9') fail("invalid value")
            if (s[pos] == '0') pos++ else while (pos < s.length && s[pos] in '0'..'9') pos++
            var integral = true
            if (pos < s.length && s[pos] == '.') {
                integral = false
                pos++
                if (pos >= s.length || s[pos] !in '0'..'9') fail("invalid number")
                while (pos < s.length && s[pos] in '0'..'9') pos++
            }
            if (pos < s.length && (s[pos] == 'e' || s[pos] == 'E')) {
                integral = false
                pos++
                if (pos < s.length && (s[pos] == '+' || s[pos] == '-')) pos++
                if (pos >= s.length || s[pos] !in '0'..'9') fail("invalid number")
                while (pos < s.length && s[pos] in '0'..'9') pos++
            }
            val text = s.substring(start, pos)
            if (integral) {
                if (text.trimStart('-').length > MAX_INT_DIGITS) fail("integer with more than $MAX_INT_DIGITS digits")
                val asLong = text.toLongOrNull()
                if (asLong != null) return asLong
            }
            val d = text.toDouble()
            if (d.isNaN() || d.isInfinite()) fail("number out of range")
            return d
        }
    }

    /** Compact JSON with keys in map order. Non-finite doubles are refused: JSON has no spelling for them. */
    fun write(value: Any?): String {
        val sb = StringBuilder()
        write(sb, value)
        return sb.toString()
    }

    private fun write(sb: StringBuilder, v: Any?) {
        when (v) {
            null -> sb.append("null")
            is Boolean -> sb.append(if (v) "true" else "false")
            is Int, is Long, is Short, is Byte -> sb.append(v.toString())
            is Number -> {
                val d = v.toDouble()
                require(!d.isNaN() && !d.isInfinite()) { "JSON cannot hold $d" }
                sb.append(if (d == Math.floor(d) && Math.abs(d) < 1e15) d.toLong().toString() + ".0" else d.toString())
            }
            is String -> quote(sb, v)
            is Map<*, *> -> {
                sb.append('{')
                var first = true
                for ((k, value) in v) {
                    if (!first) sb.append(',')
                    first = false
                    quote(sb, k.toString())
                    sb.append(':')
                    write(sb, value)
                }
                sb.append('}')
            }
            is Iterable<*> -> {
                sb.append('[')
                var first = true
                for (item in v) {
                    if (!first) sb.append(',')
                    first = false
                    write(sb, item)
                }
                sb.append(']')
            }
            else -> throw IllegalArgumentException("cannot write ${v.javaClass.name} as JSON")
        }
    }

    private fun quote(sb: StringBuilder, s: String) {
        sb.append('"')
        for (c in s) {
            when {
                c == '"' -> sb.append("\\\"")
                c == '\\' -> sb.append("\\\\")
                c == '\n' -> sb.append("\\n")
                c == '\r' -> sb.append("\\r")
                c == '\t' -> sb.append("\\t")
                c < ' ' -> sb.append(String.format("\\u%04x", c - '\u0000'))
                else -> sb.append(c)
            }
        }
        sb.append('"')
    }
}
