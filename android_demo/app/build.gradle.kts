import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
    alias(libs.plugins.kotlin.compose)
}

// App configuration: gradle.properties (or -P..., or ~/.gradle/gradle.properties) → BuildConfig.
fun setting(name: String, default: String): String = providers.gradleProperty(name).getOrElse(default).trim()

fun javaString(value: String): String = "\"" + value.replace("\\", "\\\\").replace("\"", "\\\"") + "\""

android {
    namespace = "dev.mobileml.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.mobileml.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        // Semantic version: the updater compares it with a release's min_app_version.
        versionName = "1.0.0"

        buildConfigField("String", "SERVER_URL", javaString(setting("mobileml.serverUrl", "http://10.0.2.2:8000/")))
        buildConfigField("String", "MODEL", javaString(setting("mobileml.model", "digits")))
        buildConfigField("String", "CHANNEL", javaString(setting("mobileml.channel", "dev")))
        buildConfigField("String", "PUBLIC_KEY_B64", javaString(setting("mobileml.publicKeyB64", "")))
        // Sent as `Authorization: Bearer <token>` with telemetry (`mobile-ml serve --telemetry-token`); empty: none.
        buildConfigField("String", "TELEMETRY_TOKEN", javaString(setting("mobileml.telemetryToken", "")))
        // The LiteRT this app ships: the updater skips a release whose runtime.min_version is newer.
        buildConfigField("String", "LITERT_VERSION", javaString(libs.versions.litert.get()))
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }

    buildFeatures {
        compose = true
        buildConfig = true
    }

    packaging {
        resources {
            excludes += "/META-INF/{AL2.0,LGPL2.1}"
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_11)
    }
}

dependencies {
    implementation(project(":updater"))

    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.activity.compose)
    implementation(libs.androidx.lifecycle.runtime.compose)
    implementation(platform(libs.androidx.compose.bom))
    implementation(libs.androidx.compose.ui)
    implementation(libs.androidx.compose.ui.graphics)
    implementation(libs.androidx.compose.foundation)
    implementation(libs.androidx.compose.material3)
    implementation(libs.androidx.work.runtime.ktx)
    implementation(libs.litert)

    // Preprocess.kt is plain Kotlin: its tests run on the JVM (./gradlew :app:testDebugUnitTest).
    testImplementation(libs.junit)
    debugImplementation(libs.androidx.compose.ui.tooling)
}
