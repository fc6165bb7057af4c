#!/usr/bin/env bash
# Build and test the updater (and the app's pure-Kotlin preprocessing) with command-line tools only: no Android SDK
# or Gradle can be installed on the machines this project is built on. Uses Debian's kotlinc 1.3 and JUnit 4.
#
#   android_demo/updater/test.sh            compile, then run every JUnit test, including the integration test
#                                           against `mobile-ml serve` (needs the project's venv: .venv/ by default,
#                                           or MOBILE_ML_BIN=/path/to/venv/bin)
# Exit code: JUnit's (0 when every test passed); 2 when a tool is missing and cannot be installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$here/build/kotlinc"

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
app_ml="$here/../app/src/main/java/dev/mobileml/demo/ml"
app_test="$here/../app/src/test/java/dev/mobileml/demo/ml"
sources=("$here"/src/main/kotlin/dev/mobileml/updater/*.kt "$here"/src/test/kotlin/dev/mobileml/updater/*.kt)
shopt -s nullglob
sources+=("$app_ml"/*.kt "$app_test"/*.kt)
rm -rf "$build/classes" && mkdir -p "$build/classes"
echo "test.sh: compiling ${#sources[@]} Kotlin files with $(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [0-9.]*')" >&2
kotlinc -nowarn -cp "$cp" "${sources[@]}" -d "$build/classes" 2>&1 | grep -v -e 'Xverify' -e '^OpenJDK' >&2 || true
[ -f "$build/classes/dev/mobileml/updater/Updater.class" ] || { echo "test.sh: compilation failed" >&2; exit 1; }

echo "test.sh: building the integration world (tiny digits run, int8 + fp32 exports, a key)" >&2
"$bin/python" "$here/integration/make_world.py" "$build/world" >/dev/null

classes=$(cd "$build/classes" && find . -name '*Test.class' ! -name '*$*' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)
java -Dmobileml.vectors="$repo/tests/vectors" -Dmobileml.world="$build/world" -Dmobileml.bin="$bin" \
     -Dmobileml.requireIntegration=true \
     -cp "$build/classes:$cp:/usr/share/java/kotlin-stdlib.jar" org.junit.runner.JUnitCore $classes
