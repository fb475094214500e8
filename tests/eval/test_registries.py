"""Dataset families and metrics: registries, plugins from entry points, ARCHON_DATA.

The plugin is a real installed distribution, as in ``tests/layers/test_plugins.py``: a tiny
package and its ``.dist-info`` (``METADATA`` + ``entry_points.txt``) in a temporary directory
that ``importlib.metadata`` finds once it is on the path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archon.cli.eval_cmds as eval_cmds
import archon.eval.datasets as datasets_module
import archon.eval.metrics as metrics_module
from archon.cli import app
from archon.eval import (
    Dataset,
    DatasetError,
    DatasetFamily,
    DatasetRegistry,
    EvalItem,
    LoadRequest,
    MetricOptions,
    MetricRegistry,
    NamedDataset,
    UnknownMetric,
    builtin_metrics,
    default_datasets,
    default_metrics,
    load_dataset,
)
from archon.eval.datasets import (
    DATA_ENV,
    builtin_datasets,
    detect_format,
    load_dataset_plugins,
    package_data_dir,
)
from archon.eval.loaders.registry import UnknownDatasetFormat
from archon.eval.metrics import ExactMatch, MetricInfo, load_metric_plugins
from archon.eval.plugins import PluginError
from archon.ir import Pipeline
from archon.runtime.clients.fake import ScriptedClient

PLUGIN_MODULE = '''
"""A third-party dataset family (``toy``: one ``q<TAB>a`` pair per line) and two metrics."""

from pathlib import Path

from archon.eval import Dataset, DatasetFamily, EvalItem, NamedDataset, Score
from archon.eval.metrics import MetricInfo

HERE = Path(__file__).parent


def load_toy(request):
    path = request.file()
    items = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        question, answer = line.split("\\t")
        items.append(EvalItem(id=f"toy-{number}", turns=(question,), targets=(answer,)))
    return Dataset(name=request.name or path.stem, items=tuple(items), metric="toy_len",
                   source=str(path))


FAMILY = DatasetFamily(
    "toy",
    load_toy,
    "toy_len",
    "tab-separated question/answer pairs",
    (NamedDataset("toy/qa", "toy", str(HERE / "qa.tsv"), "three toy questions"),),
    detect=lambda path: path.suffix == ".tsv",
)


class LongAnswer:
    """Scores 1 when the answer has at least ``min_chars`` characters."""

    name = "toy_len"
    needs_model = False

    def __init__(self, min_chars):
        self.min_chars = min_chars

    async def score(self, item, answers, ctx):
        return Score.of(len(answers[-1]) >= self.min_chars)


def long_answer(options):
    """Answers of three characters or more are right."""
    return LongAnswer(3)


SHOUTY = MetricInfo("toy_shouty", lambda options: LongAnswer(5), "five characters or more")
NOT_A_FAMILY = 42
'''

ENTRY_POINTS = """
[archon.datasets]
toy = archon_toy_plugin:FAMILY
broken = archon_toy_plugin_missing:FAMILY
number = archon_toy_plugin:NOT_A_FAMILY

[archon.metrics]
toy_len = archon_toy_plugin:long_answer
shouty = archon_toy_plugin:SHOUTY
gone = archon_toy_plugin_missing:nothing
number = archon_toy_plugin:NOT_A_FAMILY
"""

PIPE = """\
models { m = "fake/m" }
pipeline one { generate(models = [m], temperature = 0.0, max_tokens = 16) }
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the plugin package and its distribution metadata."""
    root = tmp_path / "site"
    package = root / "archon_toy_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_MODULE)
    (package / "qa.tsv").write_text("one?\tone\ntwo?\ttwo\nsay hello\thello\n")
    info = root / "archon_toy_plugin-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: archon-toy-plugin\nVersion: 0.2.0\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin on the path, and the once-per-process plugin discovery run afresh."""
    monkeypatch.syspath_prepend(str(site))
    datasets_module._installed.cache_clear()
    metrics_module._installed.cache_clear()
    yield site
    datasets_module._installed.cache_clear()
    metrics_module._installed.cache_clear()


def test_plugin_families_load_and_broken_ones_are_named_and_skipped(
    installed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = builtin_datasets()
    with caplog.at_level("WARNING", logger="archon.eval.plugins"):
        added = load_dataset_plugins(registry)
    assert added == ["toy"] and "toy" in registry
    assert registry.family("toy").metric == "toy_len"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    broken = next(w for w in warnings if "'broken'" in w)
    assert broken.startswith("dataset family plugin 'broken'")
    assert "archon_toy_plugin_missing:FAMILY" in broken and "archon-toy-plugin 0.2.0" in broken
    assert "ModuleNotFoundError" in broken
    assert any("'number'" in w and "is not a DatasetFamily" in w for w in warnings)

    dataset = load_dataset("toy/qa", registry=registry)
    assert dataset.name == "toy/qa" and len(dataset) == 3 and dataset.metric == "toy_len"
    assert dataset.items[2].targets == ("hello",)
    # A file of the plugin's format is detected by the family's predicate.
    tsv = installed / "archon_toy_plugin" / "qa.tsv"
    assert detect_format(tsv, registry) == "toy"
    with pytest.raises(DatasetError, match="neither JSON nor JSONL"):
        detect_format(tsv)  # the shipped rules alone do not know it
    assert load_dataset(tsv, registry=registry).name == "qa"


def test_plugin_metrics_load_by_factory_or_info(
    installed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = builtin_metrics()
    with caplog.at_level("WARNING", logger="archon.eval.plugins"):
        added = load_metric_plugins(registry)
    assert sorted(added) == ["toy_len", "toy_shouty"]
    info = {m.name: m for m in registry}
    assert info["toy_len"].description == "Answers of three characters or more are right."
    assert info["toy_shouty"].description == "five characters or more"
    assert registry.build("toy_len").name == "toy_len"
    warnings = [r.getMessage() for r in caplog.records]
    assert any(w.startswith("metric plugin 'gone'") and "archon-toy-plugin" in w for w in warnings)
    assert any(
        "'number'" in w and "neither a MetricInfo nor a metric factory" in w for w in warnings
    )
    assert len(warnings) == 2
    # Loading the same plugins again into the same registry is not a clash.
    assert sorted(load_metric_plugins(registry)) == ["toy_len", "toy_shouty"]


def test_strict_loading_raises_naming_the_plugin(installed: Path) -> None:
    with pytest.raises(PluginError, match="dataset family plugin 'broken'"):
        load_dataset_plugins(builtin_datasets(), strict=True)
    with pytest.raises(PluginError, match="metric plugin 'gone'"):
        load_metric_plugins(builtin_metrics(), strict=True)


def test_default_registries_include_plugins_and_are_fresh(installed: Path) -> None:
    datasets = default_datasets()
    assert "toy" in datasets and "toy/qa" in datasets.named()
    assert "mbpp" in datasets.named()  # the shipped families are still there
    metrics = default_metrics()
    assert "toy_len" in metrics and "exact_match" in metrics
    metrics.register("mine", lambda o: ExactMatch(), "a private metric")
    assert "mine" not in default_metrics()  # each call is a new object
    assert load_dataset("toy/qa").metric == "toy_len"  # load_dataset uses the default


def test_the_cli_evaluates_a_plugin_dataset_with_a_plugin_metric(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "home"))

    def fake(pipeline: Pipeline, *_: object) -> ScriptedClient:
        return ScriptedClient(lambda request: "yes!")  # 4 characters

    monkeypatch.setattr(eval_cmds, "make_client", fake)
    pipe = tmp_path / "one.pipe"
    pipe.write_text(PIPE)
    base = ["eval", str(pipe), "--no-cache", "--json"]
    done = CliRunner().invoke(app, [*base, "-d", "toy/qa"])
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["accuracy"] == pytest.approx(1.0)  # toy_len: >= 3 chars
    done = CliRunner().invoke(app, [*base, "-d", "toy/qa", "--metric", "toy_shouty"])
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["accuracy"] == pytest.approx(0.0)  # needs >= 5 chars
    tsv = installed / "archon_toy_plugin" / "qa.tsv"
    done = CliRunner().invoke(app, [*base, "-d", str(tsv), "--format", "toy"])
    assert done.exit_code == 0, done.stderr
    done = CliRunner().invoke(app, [*base, "-d", "toy/qa", "--metric", "toy_shoty"])
    assert done.exit_code == 2 and "did you mean 'toy_shouty'" in done.stderr


def test_unknown_names_get_a_suggestion() -> None:
    with pytest.raises(DatasetError, match=r"no dataset 'mbp'.*did you mean 'mbpp'"):
        load_dataset("mbp")
    with pytest.raises(UnknownDatasetFormat, match=r"unknown dataset format 'mixevl'.*'mixeval'"):
        load_dataset("mbpp", fmt="mixevl")
    with pytest.raises(UnknownMetric, match=r"unknown metric 'exact_mach'.*'exact_match'"):
        default_metrics().build("exact_mach")
    assert default_metrics().build("math", MetricOptions()).name == "math"


def test_registries_refuse_clashes() -> None:
    registry = builtin_datasets()

    def load(request: LoadRequest) -> Dataset:
        item = EvalItem(id="1", turns=("q",), targets=("a",))
        return Dataset(name="x", items=(item,), metric="exact_match")

    with pytest.raises(Exception, match="'mbpp' is already registered"):
        registry.register(DatasetFamily("mbpp", load, "code", "again"))
    clash = NamedDataset("gsm8k", "other", "other.jsonl", "a taken name")
    with pytest.raises(Exception, match="dataset name 'gsm8k' is already registered"):
        registry.register(DatasetFamily("other", load, "exact_match", "x", (clash,)))
    wrong = NamedDataset("fresh", "elsewhere", "f.jsonl", "format mismatch")
    with pytest.raises(Exception, match="not its family's 'other'"):
        registry.register(DatasetFamily("other", load, "exact_match", "x", (wrong,)))
    assert "other" not in registry  # a refused family leaves nothing behind
    copy = registry.copy()
    copy.register(DatasetFamily("other", load, "exact_match", "x"))
    assert "other" in copy and "other" not in registry
    metrics = MetricRegistry([MetricInfo("a", lambda o: ExactMatch(), "a")])
    with pytest.raises(Exception, match="metric 'a' is already registered"):
        metrics.register("a", lambda o: ExactMatch(), "b")
    assert DatasetRegistry().formats() == ()


def test_archon_data_overrides_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    (data / "mbpp").mkdir(parents=True)
    rows = (package_data_dir() / "mbpp" / "sample.jsonl").read_text().splitlines()[:2]
    (data / "mbpp" / "sample.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv(DATA_ENV, str(data))
    dataset = load_dataset("mbpp")
    assert len(dataset) == 2 and dataset.source == str(data / "mbpp" / "sample.jsonl")
    # A name whose file the directory lacks says where it looked and why.
    with pytest.raises(DatasetError, match=f"gsm8k.*{DATA_ENV}="):
        load_dataset("gsm8k")
    # data_dir= beats the variable; without either the package's copy is read.
    assert len(load_dataset("mbpp", data_dir=package_data_dir())) == 5
    monkeypatch.delenv(DATA_ENV)
    assert len(load_dataset("mbpp")) == 5


def test_shipped_data_is_in_the_package() -> None:
    root = package_data_dir()
    assert root.parts[-3:] == ("archon", "eval", "data")
    assert (root / "ATTRIBUTION.md").is_file()
    for entry in builtin_datasets().named().values():
        for name in (entry.file, entry.reference):
            assert name is None or (root / name).is_file(), name
    assert sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) < 2_000_000
