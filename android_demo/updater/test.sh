#!/usr/bin/env bash
# Build and test the updater (and the app's pure-Kotlin preprocessing) with command-line tools only: no Android SDK
# or Gradle can be installed on the machines this project is built on. Uses Debian's kotlinc 1.3 and JUnit 4, and
# the Kotlin 2.3 compiler inside PyPI's kotlin-jupyter-kernel (what Android Studio's Kotlin would say).
#
#   android_demo/updater/test.sh            compile, then run every JUnit test, including the integration test
#                                           against `mobile-ml serve` (needs the project's venv: .venv/ by default,
#                                           or MOBILE_ML_BIN=/path/to/venv/bin)
# Exit code: 0 when every test passed on both builds; 1 for a failed compile or test; 2 when a tool is missing
# and cannot be installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$here/build/kotlinc"
K2_KERNEL="0.19.0.944"  # the PyPI package whose jars carry Kotlin 2.3.10 (see the second compile below)

if ! command -v kotlinc >/dev/null || [ ! -f /usr/share/java/junit4.jar ]; then
    echo "test.sh: installing kotlin and junit4 from Debian's packages" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y -q kotlin junit4 >/dev/null || {
        echo "test.sh: cannot install kotlin/junit4; hint: apt-get install -y kotlin junit4" >&2; exit 2; }
fi
bin="${MOBILE_ML_BIN:-$repo/.venv/bin}"
if [ ! -x "$bin/mobile-ml" ]; then
    echo "test.sh: no mobile-ml in $bin; creating the project's venv (.venv)" >&2
    python3 -m venv "$repo/.venv" && "$repo/.venv/bin/pip" install -q -e "$repo[test]"
    bin="$repo/.venv/bin"
fi

cp="/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar"
app_main="$here/../app/src/main/java/dev/mobileml/demo"
app_test="$here/../app/src/test/java/dev/mobileml/demo"
sources=("$here"/src/main/kotlin/dev/mobileml/updater/*.kt "$here"/src/test/kotlin/dev/mobileml/updater/*.kt)
# The app's plain-Kotlin parts (no Android imports; tests/test_android_demo.py checks that) and all its JVM tests.
app_plain=("$app_main"/ml/*.kt "$app_main"/ContainerHolder.kt "$app_main"/ui/UpdateWatch.kt)
shopt -s nullglob
sources+=("${app_plain[@]}")
while IFS= read -r f; do sources+=("$f"); done < <(find "$app_test" -name '*.kt' | sort)
rm -rf "$build/classes" && mkdir -p "$build/classes"
echo "test.sh: compiling ${#sources[@]} Kotlin files with $(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [0-9.]*')" >&2
kotlinc -nowarn -cp "$cp" "${sources[@]}" -d "$build/classes" 2>&1 | grep -v -e 'Xverify' -e '^OpenJDK' >&2 || true
[ -f "$build/classes/dev/mobileml/updater/Updater.class" ] || { echo "test.sh: compilation failed" >&2; exit 1; }

# Android Studio compiles these sources with Kotlin 2.x, which turns some 1.3-era code into errors. PyPI's
# kotlin-jupyter-kernel carries a Kotlin 2.3 compiler: compile the same files with it, warnings as errors, and run
# the tests on both builds.
k2="$build/k2"
if [ ! -f "$k2/jars/kotlin-stdlib.jar" ]; then
    echo "test.sh: fetching the Kotlin 2.3 compiler (kotlin-jupyter-kernel==$K2_KERNEL from PyPI)" >&2
    rm -rf "$k2" && mkdir -p "$k2/jars"
    "$bin/pip" download -q --no-deps "kotlin-jupyter-kernel==$K2_KERNEL" -d "$k2" 2>/dev/null || {
        echo "test.sh: cannot download kotlin-jupyter-kernel==$K2_KERNEL; hint: check pip's index" >&2; exit 2; }
    (cd "$k2" && unzip -q -o ./*.whl 'run_kotlin_kernel/jars/*' && rm ./*.whl)
    for jar in "$k2"/run_kotlin_kernel/jars/*.jar; do
        case "$(basename "$jar")" in
            kotlin-jupyter-kernel-*-all.jar) mv "$jar" "$k2/jars/compiler.jar" ;;
            kotlin-stdlib-*) mv "$jar" "$k2/jars/kotlin-stdlib.jar" ;;
            kotlin-reflect-*) mv "$jar" "$k2/jars/kotlin-reflect.jar" ;;
            kotlin-script-runtime-*) mv "$jar" "$k2/jars/kotlin-script-runtime.jar" ;;
            annotations-*) mv "$jar" "$k2/jars/annotations.jar" ;;
        esac
    done
    rm -rf "$k2/run_kotlin_kernel"
fi
rm -rf "$build/classes-k2" && mkdir -p "$build/classes-k2"
k2cp="$k2/jars/compiler.jar:$k2/jars/kotlin-stdlib.jar:$k2/jars/kotlin-reflect.jar:$k2/jars/kotlin-script-runtime.jar"
k2cp="$k2cp:$k2/jars/annotations.jar"
echo "test.sh: compiling them again with Kotlin 2.3, -Werror, JVM 11 bytecode" >&2
java -cp "$k2cp" org.jetbrains.kotlin.cli.jvm.K2JVMCompiler -no-stdlib -no-reflect -Werror -jvm-target 11 \
     -cp "$k2/jars/kotlin-stdlib.jar:$cp" -d "$build/classes-k2" "${sources[@]}" >&2 \
    || { echo "test.sh: Kotlin 2.3 compilation failed" >&2; exit 1; }

echo "test.sh: building the integration world (tiny digits run, int8 + fp32 exports, a key)" >&2
"$bin/python" "$here/integration/make_world.py" "$build/world" >/dev/null

classes=$(cd "$build/classes" && find . -name '*Test.class' ! -name '*$*' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)
run_tests() {  # $1: label, $2: classpath of the build under test
    echo "test.sh: JUnit on the $1 build" >&2
    java -Dmobileml.vectors="$repo/tests/vectors" -Dmobileml.world="$build/world" -Dmobileml.bin="$bin" \
         -Dmobileml.requireIntegration=true -cp "$2:$cp" org.junit.runner.JUnitCore $classes
}
run_tests "kotlinc 1.3" "$build/classes:/usr/share/java/kotlin-stdlib.jar"
run_tests "Kotlin 2.3" "$build/classes-k2:$k2/jars/kotlin-stdlib.jar"
