"""The parts of android_demo/ that can be checked without an Android SDK: the bundled fallback model, the script that
makes it, and the Gradle version catalog's consistency (the Kotlin code itself is tested by updater/test.sh)."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mobile_ml.export.metadata import health_check

DEMO = Path(__file__).parent.parent / "android_demo"
BUNDLE = DEMO / "app" / "src" / "main" / "assets" / "bundle"


def test_bundled_model_is_the_one_described_and_passes_its_health_check_on_litert():
    bundle = json.loads((BUNDLE / "bundle.json").read_text())
    model, meta = (BUNDLE / "model.tflite").read_bytes(), (BUNDLE / "metadata.json").read_bytes()
    assert hashlib.sha256(model).hexdigest() == bundle["model_sha256"]
    assert hashlib.sha256(meta).hexdigest() == bundle["metadata_sha256"]
    metadata = json.loads(meta)
    assert metadata["input"]["kind"] == "image" and metadata["input"]["tensor"]["shape"][1:] == [8, 8, 1]
    result = health_check(model, metadata)
    assert result.ok, result.detail


def run_bundler(*args):
    return subprocess.run(
        [sys.executable, str(DEMO / "bundle_model.py"), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_bundler_copies_a_checked_variant_and_refuses_a_run_without_exports(exported, tmp_path):
    run, _ = exported
    out = tmp_path / "assets" / "bundle"
    done = run_bundler(run, "--variant", "int8", "--out", out)
    assert done.returncode == 0, done.stderr
    assert (out / "model.tflite").read_bytes() == (run / "exports" / "int8" / "model.tflite").read_bytes()
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    refused = run_bundler(tmp_path / "no-such-run", "--out", out)
    assert refused.returncode == 2
    assert "no usable export" in refused.stderr and "hint:" in refused.stderr and "Traceback" not in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle"]  # no temp directory left behind


# The Android build cannot run here (no SDK, no Gradle, no Maven). These checks catch what a typo would break
# in Android Studio: catalog aliases, module includes, manifest classes, resource references, updater API names.


def _catalog():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((DEMO / "gradle" / "libs.versions.toml").read_text())


def _accessor(alias: str) -> str:
    return re.sub(r"[-_]", ".", alias)


def test_every_catalog_alias_the_build_uses_exists_and_every_version_ref_resolves():
    catalog = _catalog()
    libraries = {_accessor(k) for k in catalog["libraries"]}
    plugins = {_accessor(k) for k in catalog["plugins"]}
    for section in ("libraries", "plugins"):
        for alias, spec in catalog[section].items():
            ref = spec.get("version", {}).get("ref") if isinstance(spec.get("version"), dict) else None
            assert ref is None or ref in catalog["versions"], f"{alias}: version.ref '{ref}' is not in [versions]"
    scripts = sorted(DEMO.rglob("*.gradle.kts"))
    assert {p.relative_to(DEMO).as_posix() for p in scripts} >= {
        "settings.gradle.kts",
        "build.gradle.kts",
        "app/build.gradle.kts",
        "updater/build.gradle.kts",
    }
    used = 0
    for script in scripts:
        text = script.read_text()
        for name in re.findall(r"\blibs\.plugins\.([\w.]+)", text):
            assert name in plugins, f"{script.name}: libs.plugins.{name} is not in the catalog"
            used += 1
        for name in re.findall(r"\blibs\.(?!plugins\.|versions\.|bundles\.)([\w.]+)", text):
            assert name in libraries, f"{script.name}: libs.{name} is not in the catalog"
            used += 1
    assert used >= 10


def test_settings_include_every_module_and_the_app_uses_the_updater():
    settings = (DEMO / "settings.gradle.kts").read_text()
    for module in ("app", "updater"):
        assert f'":{module}"' in settings and (DEMO / module / "build.gradle.kts").exists()
    assert 'project(":updater")' in (DEMO / "app" / "build.gradle.kts").read_text()


def _kotlin_declarations(root: Path) -> dict[str, set[str]]:
    """package → names of top-level classes, objects and interfaces declared under ``root``."""
    out: dict[str, set[str]] = {}
    for f in root.rglob("*.kt"):
        text = f.read_text()
        package = re.search(r"^package ([\w.]+)", text, re.M).group(1)
        names = re.findall(r"^(?:[a-z]+ )*(?:class|object|interface) (\w+)", text, re.M)
        out.setdefault(package, set()).update(names)
    return out


def test_app_imports_only_updater_names_that_exist():
    declared = _kotlin_declarations(DEMO / "updater" / "src" / "main" / "kotlin")["dev.mobileml.updater"]
    imports = set()
    for f in (DEMO / "app" / "src").rglob("*.kt"):
        imports |= set(re.findall(r"^import dev\.mobileml\.updater\.(\w+)", f.read_text(), re.M))
    assert imports, "the app does not use the updater"
    assert imports <= declared, f"not in the updater: {sorted(imports - declared)}"


def test_manifest_classes_and_resource_references_resolve():
    main = DEMO / "app" / "src" / "main"
    manifest = (main / "AndroidManifest.xml").read_text()
    declared = _kotlin_declarations(main / "java")
    for name in re.findall(r'android:name="(\.[\w.]+|dev\.mobileml\.[\w.]+)"', manifest):
        qualified = "dev.mobileml.demo" + name if name.startswith(".") else name
        package, _, cls = qualified.rpartition(".")
        assert cls in declared.get(package, set()), f"AndroidManifest names {qualified}, which is not declared"
    resources: set[str] = set()
    for xml in (DEMO / "app" / "src").rglob("res/*/*.xml"):
        kind = xml.parent.name.split("-")[0]
        resources.add(f"{kind}/{xml.stem}")
        resources |= {
            f"{'string' if t == 'string' else t}/{n}"
            for t, n in re.findall(r'<(string|style|color|dimen|bool|integer) name="([\w.]+)"', xml.read_text())
        }
    for png in (DEMO / "app" / "src").rglob("res/*/*.png"):
        resources.add(f"{png.parent.name.split('-')[0]}/{png.stem}")
    refs = set(re.findall(r"@(string|xml|style|drawable|mipmap|color)/([\w.]+)", manifest))
    for xml in (DEMO / "app" / "src").rglob("res/*/*.xml"):
        refs |= set(re.findall(r"@(string|xml|style|drawable|mipmap|color)/([\w.]+)", xml.read_text()))
    for f in (DEMO / "app" / "src").rglob("*.kt"):
        refs |= set(re.findall(r"\bR\.(string|xml|style|drawable|mipmap|color)\.(\w+)", f.read_text()))
    missing = sorted(f"{k}/{n}" for k, n in refs if f"{k}/{n}" not in resources and not n.startswith("Theme.Material"))
    assert missing == [], f"unresolved resource references: {missing}"


# What someone opening the project in Android Studio, or following the README, hits first: the wrapper, the README's
# commands and paths, dependencies nobody uses, the icon, and the plain-Kotlin files that updater/test.sh tests.

WRAPPER = DEMO / "gradle" / "wrapper"


def _readme() -> str:
    return (DEMO / "README.md").read_text()


def _wrapper_properties() -> dict[str, str]:
    text = (WRAPPER / "gradle-wrapper.properties").read_text()
    pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")]
    return {k.strip(): v.strip().replace("\\:", ":") for k, v in pairs}


def _readme_sha256(name: str) -> str:
    """The sha256 that android_demo/README.md states for ``name`` (table in "The Gradle wrapper")."""
    found = re.search(rf"^\| `{re.escape(name)}`[^|]*\| `([0-9a-f]{{64}})` \|$", _readme(), re.M)
    assert found, f"README.md states no sha256 for {name}"
    return found.group(1)


def test_gradle_wrapper_is_committed_as_the_readme_describes_and_pins_the_distribution():
    import zipfile

    for name in ("gradlew", "gradlew.bat", "gradle/wrapper/gradle-wrapper.jar"):
        assert (DEMO / name).is_file(), f"android_demo/{name} is missing: ./gradlew cannot run"
        assert hashlib.sha256((DEMO / name).read_bytes()).hexdigest() == _readme_sha256(name), name
    staged = subprocess.run(["git", "ls-files", "-s", "gradlew"], cwd=DEMO, capture_output=True, text=True).stdout
    assert staged.startswith("100755"), "gradlew must be committed executable"
    with zipfile.ZipFile(WRAPPER / "gradle-wrapper.jar") as jar:
        assert "org/gradle/wrapper/GradleWrapperMain.class" in jar.namelist()

    props = _wrapper_properties()
    url = re.fullmatch(
        r"https://services\.gradle\.org/distributions/gradle-([\d.]+)-bin\.zip", props["distributionUrl"]
    )
    assert url, props["distributionUrl"]
    # The README's "AGP x with Gradle y" is what the catalog and the wrapper say.
    agp, gradle = re.search(r"AGP ([\d.]+) with Gradle ([\d.]+)", _readme()).groups()
    assert (agp, gradle) == (_catalog()["versions"]["agp"], url.group(1))
    assert re.fullmatch(r"[0-9a-f]{64}", props["distributionSha256Sum"]), "distributionSha256Sum is not pinned"
    assert f"pins `gradle-{gradle}-bin.zip` to\n  `{props['distributionSha256Sum']}`" in _readme()


def _run_wrapper(project: Path, properties: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``gradlew --version`` with the committed script and jar in a fresh project and Gradle home."""
    (project / "gradle" / "wrapper").mkdir(parents=True)
    (project / "gradlew").write_bytes((DEMO / "gradlew").read_bytes())
    (project / "gradle" / "wrapper" / "gradle-wrapper.jar").write_bytes((WRAPPER / "gradle-wrapper.jar").read_bytes())
    text = "".join(f"{k}={v}\n".replace("://", "\\://") for k, v in properties.items())
    (project / "gradle" / "wrapper" / "gradle-wrapper.properties").write_text(text)
    env = {"PATH": os.environ["PATH"], "GRADLE_USER_HOME": str(project / "home"), "HOME": str(project)}
    cmd = ["sh", "gradlew", "--version"]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_the_committed_wrapper_runs_and_refuses_a_distribution_with_another_checksum(tmp_path):
    fake = tmp_path / "gradle-fake-bin.zip"
    fake.write_bytes(b"not the gradle distribution")
    props = _wrapper_properties() | {"distributionUrl": fake.as_uri()}
    refused = _run_wrapper(tmp_path / "pinned", props)
    assert refused.returncode != 0
    assert "Verification of Gradle distribution failed" in refused.stderr, refused.stdout + refused.stderr
    assert f"Expected checksum: '{props['distributionSha256Sum']}'" in refused.stderr
    # The same file with its own checksum passes that check (and then fails as the non-zip it is): the pinned
    # value decides, not a broken download.
    own = hashlib.sha256(fake.read_bytes()).hexdigest()
    accepted = _run_wrapper(tmp_path / "own", props | {"distributionSha256Sum": own})
    assert "Downloading" in accepted.stdout, accepted.stdout + accepted.stderr
    assert accepted.returncode != 0 and "Verification of Gradle distribution failed" not in accepted.stderr


def _readme_commands() -> list[str]:
    """Inline code spans and the lines of shell blocks (comments cut), from android_demo/README.md."""
    text = _readme()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S)  # commands; not the layout or Kotlin blocks
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return re.findall(r"`([^`\n]+)`", re.sub(r"```\w*\n.*?```", "", text, flags=re.S)) + [x for x in lines if x]


# Paths the README names that are not in the repository: outputs of the commands it shows, and paths inside the
# npm packages the wrapper was taken from.
_MADE_ELSEWHERE = ("exports/", "keys/", "runs/", "build/", "assets/android-template", "template/android", "org/")


def test_every_command_and_path_in_the_readme_exists():
    modules = set(re.findall(r'":(\w+)"', (DEMO / "settings.gradle.kts").read_text()))
    demo = DEMO / "app" / "src" / "main" / "java" / "dev" / "mobileml" / "demo"
    roots = (DEMO, DEMO.parent, DEMO / "app" / "src" / "main", demo)
    checked = set()
    for span in _readme_commands():
        if span.startswith("./gradlew"):
            assert os.access(DEMO / "gradlew", os.X_OK), f"README runs {span}, but there is no executable gradlew"
            for module in re.findall(r"(?<!\S):(\w+):\w+", span):
                assert module in modules, f"README: {span}: no module :{module} in settings.gradle.kts"
            checked.add(span)
        for script in re.findall(r"[\w./-]+/[\w.-]+\.(?:sh|py)\b", span):
            assert any((root / script).is_file() for root in roots), f"README runs {script}, which does not exist"
            checked.add(script)
        is_path = re.fullmatch(r"[\w][\w./-]*/[\w./-]*", span) and not span.startswith(_MADE_ELSEWHERE)
        if is_path and "..." not in span:
            assert any((root / span).exists() for root in roots), f"README names {span}, which does not exist"
            checked.add(span)
    assert {"./gradlew :updater:test :app:testDebugUnitTest", "android_demo/updater/test.sh"} <= checked
    assert len(checked) >= 15


def test_the_plain_kotlin_that_test_sh_compiles_uses_no_android_and_the_app_uses_it():
    script = (DEMO / "updater" / "test.sh").read_text()
    listed = re.search(r"^app_plain=\((.*)\)$", script, re.M).group(1).split()
    main = DEMO / "app" / "src" / "main" / "java" / "dev" / "mobileml" / "demo"
    files = [f for entry in listed for f in sorted(main.glob(entry.removeprefix('"$app_main"/')))]
    assert len(files) >= len(listed), f"test.sh lists app files that do not exist: {listed}"
    for f in files:
        imports = re.findall(r"^import ([\w.]+)", f.read_text(), re.M)
        foreign = [i for i in imports if not i.startswith(("java.", "kotlin.", "dev.mobileml."))]
        assert foreign == [], f"{f.name} is compiled without Android by test.sh but imports {foreign}"
    names = {f.name for f in files}
    assert {"ContainerHolder.kt", "UpdateWatch.kt"} <= names
    application = (main / "DemoApplication.kt").read_text()
    assert "ContainerHolder" in application and "lateinit" not in application
    view_model = (main / "ui" / "DigitViewModel.kt").read_text()
    assert "UpdateWatch.view(" in view_model and "wasChecking" not in view_model
    # A result computed for strokes that Clear (or a newer stroke) replaced is dropped inside the atomic update.
    assert re.search(r"_state\.update \{\s*if \(it\.strokes !== strokes\) it", view_model)


def test_the_updater_module_still_tests_when_copied_without_the_shared_vectors():
    script = (DEMO / "updater" / "build.gradle.kts").read_text()
    guarded = re.search(r"if \(vectors\.isDirectory\) \{(.*?)\} else \{(.*?)\n    \}", script, re.S)
    assert guarded, "updater/build.gradle.kts must check that ../tests/vectors exists before using it"
    present, absent = guarded.groups()
    assert "inputs.dir(vectors)" in present and script.count("inputs.dir(") == 1
    excluded = re.search(r'excludeTestsMatching\("dev\.mobileml\.updater\.(\w+)"\)', absent).group(1)
    # The excluded class exists and is the one that reads the vectors.
    test_dir = DEMO / "updater" / "src" / "test" / "kotlin" / "dev" / "mobileml" / "updater"
    assert "mobileml.vectors" in (test_dir / f"{excluded}.kt").read_text()
    assert [f.name for f in test_dir.glob("*.kt") if "mobileml.vectors" in f.read_text()] == [f"{excluded}.kt"]


# Each library the app declares, and the package its code must import for the dependency to be used.
_USED_AS = {
    "androidx.core.ktx": "androidx.core.",
    "androidx.activity.compose": "androidx.activity.compose.",
    "androidx.lifecycle.runtime.compose": "androidx.lifecycle.compose.",
    "androidx.compose.ui": "androidx.compose.ui.",
    "androidx.compose.ui.graphics": "androidx.compose.ui.graphics.",
    "androidx.compose.foundation": "androidx.compose.foundation.",
    "androidx.compose.material3": "androidx.compose.material3.",
    "androidx.work.runtime.ktx": "androidx.work.",
    "litert": "org.tensorflow.lite.",
}


def test_the_app_declares_no_library_it_does_not_use():
    build = (DEMO / "app" / "build.gradle.kts").read_text()
    declared = re.findall(r"^\s*implementation\(libs\.([\w.]+)\)", build, re.M)
    assert declared, "no implementation(libs.…) found"
    imports = set()
    for f in (DEMO / "app" / "src" / "main").rglob("*.kt"):
        imports |= set(re.findall(r"^import ([\w.]+)", f.read_text(), re.M))
    for alias in declared:
        assert alias in _USED_AS, f"implementation(libs.{alias}): say in this test which package uses it"
        assert any(i.startswith(_USED_AS[alias]) for i in imports), f"libs.{alias} is declared but never imported"
    aliases = {_accessor(a) for a in _catalog()["libraries"]}
    used = set(re.findall(r"\blibs\.([\w.]+)", build + (DEMO / "updater" / "build.gradle.kts").read_text()))
    assert aliases - used == set(), f"catalog entries no module uses: {sorted(aliases - used)}"


def test_every_xml_file_parses_and_the_app_has_a_launcher_icon_for_every_api_level():
    import xml.dom.minidom

    for f in (DEMO / "app" / "src").rglob("*.xml"):
        xml.dom.minidom.parse(str(f))  # e.g. "--" inside a comment breaks the resource build
    manifest = (DEMO / "app" / "src" / "main" / "AndroidManifest.xml").read_text()
    icon = re.search(r'<application[^>]*android:icon="@mipmap/(\w+)"', manifest, re.S)
    assert icon, "the application declares no android:icon"
    res = DEMO / "app" / "src" / "main" / "res"
    adaptive = (res / "mipmap-anydpi-v26" / f"{icon.group(1)}.xml").read_text()
    assert "<adaptive-icon" in adaptive  # API 26+
    # API 24 and 25 have no adaptive icons: a bitmap per density, of the launcher size.
    from PIL import Image

    for density, side in {"mdpi": 48, "hdpi": 72, "xhdpi": 96, "xxhdpi": 144, "xxxhdpi": 192}.items():
        with Image.open(res / f"mipmap-{density}" / f"{icon.group(1)}.png") as png:
            assert png.size == (side, side), density
