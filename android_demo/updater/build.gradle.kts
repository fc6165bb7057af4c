import org.gradle.api.tasks.testing.logging.TestExceptionFormat
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

// The update client: plain Kotlin/JVM, no Android imports, so it is built and tested on any JVM
// (here by Gradle; on machines without Gradle by updater/test.sh with kotlinc) and used by :app.
plugins {
    `java-library`
    alias(libs.plugins.kotlin.jvm)
}

// Java 11 bytecode, the same as :app, which D8 desugars for minSdk 24.
java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_11)
    }
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // The protocol's shared test vectors live in the Python project: <repo>/tests/vectors. A copy of this module
    // in another app has no such directory: there the other tests run and VectorsTest is left out, because
    // Gradle fails a task whose declared input directory does not exist.
    val vectors = rootDir.resolve("../tests/vectors").canonicalFile
    workingDir = projectDir  // tests may also find them as ../../tests/vectors
    if (vectors.isDirectory) {
        systemProperty("mobileml.vectors", vectors.path)
        inputs.dir(vectors).withPropertyName("vectors").withPathSensitivity(PathSensitivity.RELATIVE)
    } else {
        logger.lifecycle("updater: no ${vectors.path}, so VectorsTest does not run (the module was copied out)")
        filter { excludeTestsMatching("dev.mobileml.updater.VectorsTest") }
    }
    // The integration test against `mobile-ml serve` runs only when given a world (as updater/test.sh builds one):
    // ./gradlew :updater:test -Pmobileml.world=... -Pmobileml.bin=<venv>/bin
    for (name in listOf("mobileml.world", "mobileml.bin", "mobileml.requireIntegration")) {
        providers.gradleProperty(name).orNull?.let { systemProperty(name, it) }
    }
    testLogging {
        events("failed")
        exceptionFormat = TestExceptionFormat.FULL
    }
}
