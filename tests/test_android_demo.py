"""The parts of android_demo/ that can be checked without an Android SDK: the bundled fallback model, the script that
makes it, and the Gradle version catalog's consistency (the Kotlin code itself is tested by updater/test.sh)."""

import hashlib
import json
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
