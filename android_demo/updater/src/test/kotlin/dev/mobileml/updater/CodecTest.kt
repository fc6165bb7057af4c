package dev.mobileml.updater

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.util.Random

/** The hand-written pieces that replace libraries: JSON, base64, semver. Checked against the JDK where it has one. */
class CodecTest {
    @Test
    fun base64MatchesTheJdkOnEveryLength() {
        val random = Random(7)
        for (n in 0..70) {
            val data = ByteArray(n).also { random.nextBytes(it) }
            val jdk = java.util.Base64.getEncoder().encodeToString(data)
            assertEquals(jdk, Codec.base64Encode(data))
            assertArrayEquals(data, Codec.base64Decode(jdk))
        }
        for (bad in listOf("a", "ab=c", "a*bc")) expectFailure { Codec.base64Decode(bad) }
    }

    @Test
    fun jsonReadsWhatPythonWrites() {
        val doc = Json.parse("{\"a\": [1, -2.5, 1e3, true, null], \"b\": \"\\u00e9\\n\\\"x\\\"\", \"c\": {}}") as Map<*, *>
        assertEquals(listOf(1L, -2.5, 1000.0, true, null), doc["a"])
        assertEquals("é\n\"x\"", doc["b"])
        assertEquals(emptyMap<String, Any?>(), doc["c"])
        val back = Json.parse(Json.write(doc))
        assertEquals(doc, back)
        assertEquals("{\"k\":\"\\u0001\",\"n\":2.0}", Json.write(mapOf("k" to "\u0001", "n" to 2.0)))
    }

    @Test
    fun jsonRefusesWhatIsNotJson() {
        val bad = listOf("", "{", "{\"a\":1,}", "[1 2]", "{\"a\":1}x", "01", "1.", "\"\u0001\"", "{\"a\":1,\"a\":2}",
                         "tru", "[" .repeat(200) + "]".repeat(200), "{'a': 1}", "NaN",
                         "\"\\ud800\"", "\"\\udc00\\ud800\"", "[".repeat(33) + "]".repeat(33), "1e400", "-1e400",
                         "1" + "0".repeat(19))
        for (ok in listOf("\"\\ud83d\\ude00\"", "[".repeat(32) + "]".repeat(32), "-" + "9".repeat(18))) Json.parse(ok)
        for (text in bad) expectFailure("'$text'") { Json.parse(text) }
        expectFailure("invalid UTF-8") { Json.parseObject(byteArrayOf(0x7b, 0xff.toByte(), 0x7d)) }
    }

    @Test
    fun semverOrdersAsMobileMlDoes() {
        val ordered = listOf("0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2",
                             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0")
        for (i in ordered.indices) for (j in ordered.indices) {
            val c = Semver.compare(ordered[i], ordered[j])
            assertTrue("${ordered[i]} vs ${ordered[j]}: $c", Integer.signum(c) == Integer.signum(i.compareTo(j)))
        }
        // contracts/manifest.py's SEMVER: no empty or leading-zero numeric identifier, at most 9 digits, no build
        val bad = listOf("1.0", "01.0.0", "1.0.0-", "v1.0.0", "", "1.0.0-a..b", "1.0.0-.a", "1.0.0-a.", "1.0.0-01",
                         "1234567890.0.0", "1.0.0+build", "1.0.0\n")
        for (v in bad) assertTrue(v, !Semver.isValid(v))
        for (v in listOf("1.0.0-0", "1.0.0-0a", "1.0.0--", "123456789.0.0")) assertTrue(v, Semver.isValid(v))
    }

    private fun expectFailure(what: String = "", block: () -> Unit) {
        try {
            block()
        } catch (e: Exception) {
            return
        }
        fail("accepted $what")
    }
}
