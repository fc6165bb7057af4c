from pathlib import Path

import pytest

from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.pipeline import load_pipeline_config, load_train_config


def write(tmp_path, text, name="p.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_example_config_loads_and_resolves_paths():
    root = Path(__file__).resolve().parent.parent
    cfg = load_pipeline_config(root / "examples" / "penguins.toml")
    assert Path(cfg.data.source) == root / "examples" / "penguins-raw.csv"
    assert Path(cfg.out).resolve() == root / "runs" / "penguins"
    assert cfg.data.clean.drop_columns == ("studyName", "Sample Number", "Individual ID", "Comments")
    assert cfg.train.grid.depth == (1, 2) and cfg.train.family == "mlp"


def test_malformed_toml_names_line(tmp_path):
    p = write(tmp_path, '[data]\nsource = "x.csv"\ntarget = \n')
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 3"):
        load_pipeline_config(p)


def test_unknown_key_named_with_suggestion(tmp_path):
    p = write(tmp_path, '[data]\nsource = "x.csv"\n[data.clean]\nmising = "drop"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'data\.clean\.mising'") as e:
        load_pipeline_config(p)
    assert e.value.hint == "did you mean 'missing'?"


def test_wrong_type_names_key(tmp_path):
    p = write(tmp_path, '[data]\nsource = "x.csv"\n[train]\nepochs = "ten"\n')
    with pytest.raises(ConfigError, match=r"train\.epochs must be a whole number, got 'ten'"):
        load_pipeline_config(p)


def test_wrong_list_element_names_index(tmp_path):
    p = write(tmp_path, '[data]\nsource = "x.csv"\n[train.grid]\nwidth = [16, "big"]\n')
    with pytest.raises(ConfigError, match=r"train\.grid\.width\[1\] must be a whole number"):
        load_pipeline_config(p)


def test_invalid_value_names_section(tmp_path):
    p = write(tmp_path, '[data]\nsource = "x.csv"\n[data.split]\ntrain = 0.9\n')
    with pytest.raises(ConfigError, match=r"\[data\.split\] split ratios add up to 1\.2"):
        load_pipeline_config(p)


def test_required_key_missing(tmp_path):
    p = write(tmp_path, '[data]\ntarget = "y"\n')
    with pytest.raises(ConfigError, match=r"required key 'data\.source' is missing"):
        load_pipeline_config(p)


def test_bool_is_not_an_int(tmp_path):
    p = write(tmp_path, "[train]\nepochs = true\n")
    with pytest.raises(ConfigError, match=r"train\.epochs must be a whole number"):
        load_train_config(p)


def test_train_config_accepts_pipeline_file_and_rejects_unknown_tables(tmp_path):
    p = write(tmp_path, '[data]\nsource = "x.csv"\n[train]\nepochs = 7\n[train.grid]\nwidth = [4]\n')
    cfg = load_train_config(p)
    assert cfg.epochs == 7 and cfg.grid.width == (4,)
    with pytest.raises(ConfigError, match="unknown key 'model'"):
        load_train_config(write(tmp_path, "[model]\nx = 1\n", "m.toml"))


def test_missing_config_file(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        load_train_config(tmp_path / "nope.toml")


def test_pipeline_export_section(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[data]\nsource = "builtin:digits"\n[export]\nvariants = ["fp32", "int8"]\nmax_accuracy_drop = 0.5\n')
    cfg = load_pipeline_config(p)
    assert cfg.export.variants == ("fp32", "int8") and cfg.export.max_accuracy_drop == 0.5
    p.write_text('[data]\nsource = "builtin:digits"\n[export]\nvariants = ["int9"]\n')
    with pytest.raises(ConfigError, match="unknown variant 'int9'"):
        load_pipeline_config(p)


def test_benchmark_and_publish_tables(tmp_path):
    cfg = load_pipeline_config(write(tmp_path, '[data]\nsource = "builtin:digits"\n'))
    assert cfg.benchmark is None and cfg.publish is None  # no tables: the pipeline stops after export
    p = write(tmp_path, '[data]\nsource = "builtin:digits"\n[benchmark]\nthreads = [1, 2]\n[publish]\nmodel = "m"\n')
    cfg = load_pipeline_config(p)
    # keys not given take quickstart's short phases, not `mobile-ml benchmark`'s full ones
    assert cfg.benchmark.threads == (1, 2) and cfg.benchmark.warmup_seconds == 0.1 and cfg.benchmark.min_seconds == 0.3
    assert cfg.publish.model == "m" and cfg.publish.channel == "dev"
    assert Path(cfg.publish.root) == tmp_path.resolve() / "exports"  # relative to the TOML file, like every path
    assert Path(cfg.publish.key_dir) == tmp_path.resolve() / "keys" / "dev"
    p.write_text('[data]\nsource = "builtin:digits"\n[publish]\nmodel = "m"\nroot = "s3://bucket/models"\n')
    assert load_pipeline_config(p).publish.root == "s3://bucket/models"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[benchmark]\ntreads = [1]\n", r"unknown key 'benchmark\.treads'"),
        ("[benchmark]\nthreads = [0]\n", r"\[benchmark\] thread counts must be positive"),
        ('[benchmark]\nmin_seconds = "long"\n', r"benchmark\.min_seconds must be a number"),
        ('[publish]\nchannel = "beta"\n', r"required key 'publish\.model' is missing"),
        ("benchmark = true\n", r"benchmark must be a table"),
    ],
)
def test_benchmark_and_publish_tables_are_strict(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_pipeline_config(write(tmp_path, text + '[data]\nsource = "builtin:digits"\n'))


@pytest.mark.parametrize(
    "value",
    [
        "[" * 5000 + "]" * 5000,  # tomllib itself recurses on these
        "{a = " * 3000 + "1" + "}" * 3000,
        "[" * 30 + "]" * 30,  # readable, but deeper than any config: refused before anything walks it
    ],
)
def test_deep_nesting_is_a_config_error(tmp_path, value):
    with pytest.raises(ConfigError, match="nested") as e:
        load_pipeline_config(write(tmp_path, '[data]\nsource = "builtin:digits"\n[train]\nepochs = ' + value + "\n"))
    assert e.value.hint and "16" in e.value.hint


def test_train_config_accepts_a_pipeline_file_with_every_table(tmp_path):
    p = write(tmp_path, '[data]\nsource = "x.csv"\n[train]\nepochs = 4\n[benchmark]\n[publish]\nmodel = "m"\n')
    assert load_train_config(p).epochs == 4


def test_readme_pipeline_config_block_is_a_valid_config(tmp_path):
    """The documented format is the real one: the README's ```toml block loads, every table included."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Pipeline config", 1)[1].split("```toml\n", 1)[1].split("\n```", 1)[0]
    cfg = load_pipeline_config(write(tmp_path, block))
    assert cfg.export.prune_sparsity == 0.5 and cfg.benchmark.threads == (1,) and cfg.publish.model == "penguins"
    assert readme.count("\n```") % 2 == 0  # every fence that opens also closes
