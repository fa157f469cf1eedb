"""Tests of embgeom in a notebook: the result as an HTML table, the report's figures in
memory, report/compare/track of arrays, error messages without array contents, typed metric
attributes that follow the catalogue, the docstrings, and the example notebook."""

from __future__ import annotations

import ast
import inspect
import json
import os
import pickle
import runpy
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

import embgeom
import embgeom.ray

ROOT = Path(__file__).resolve().parents[3]
DIGITS = ROOT / "data" / "digits.npz"
SUPCON = ROOT / "data" / "fashion-supcon"
SIMCLR = ROOT / "data" / "fashion-simclr"
PACKAGE = Path(embgeom.__file__).parent
FIGURE_IDS = ["01-alignment-uniformity", "02-distance-histograms", "03-circle",
              "04-class-mean-cosines", "05-class-mean-angles", "06-spectrum",
              "07-within-class-distances", "08-cdnv", "09-pca-scatter",
              "10-intrinsic-dimension", "11-k-occurrence", "12-hard-negatives"]


def digits():
    data = np.load(DIGITS)
    return data["embeddings"], data["labels"]


def staging_root() -> Path:
    return Path(tempfile.gettempdir()) / f"embgeom-{os.getuid()}"


def leftovers() -> set:
    root = staging_root()
    return set(os.listdir(root)) if root.exists() else set()


def test_the_result_renders_as_an_escaped_html_table():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((61, 8)).astype(np.float32)
    # A class named like markup, with a single row: its name is in a warning.
    y = ["<b>bold</b>"] + [f"c{k % 3}" for k in range(60)]
    result = embgeom.analyze(x, labels=y)
    page = result._repr_html_()
    assert page.startswith('<div class="embgeom-analysis">') and "<table>" in page
    assert "<th" in page and "metric</th>" in page and "ideal</th>" in page
    for row in result.metrics():
        if row["value"] is not None:
            assert f"<code>{row['metric']}</code>" in page, row["metric"]
    assert "Warnings" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<b>bold" not in page
    assert "&times;" in page and "61 &times; 8" in page
    # The ideal column: NC1's ideal is 0, the effective rank's D.
    nc1_row = page[page.index("<code>nc1</code>"):].split("</tr>")[0]
    assert ">0.0000</td>" in nc1_row
    rank_row = page[page.index("<code>effective_rank</code>"):].split("</tr>")[0]
    assert ">8.0000</td>" in rank_row


def test_every_figure_is_drawn_in_memory_shown_inline_and_saved(tmp_path):
    x, y = digits()
    result = embgeom.analyze(x, labels=y, figures=True)
    figures = result.figures()
    assert [f.id for f in figures] == FIGURE_IDS and not figures.skipped
    for figure in figures:
        assert figure._repr_svg_() == figure.svg and figure.svg.startswith("<svg")
        assert figure.title and figure.caption
    assert figures["spectrum"] is figures["06-spectrum"] is figures[5]
    assert "Eigenvalue spectrum" in figures._repr_html_() and "<figcaption>" in figures._repr_html_()
    with pytest.raises(KeyError, match="no figure 'nothing'"):
        figures["nothing"]
    # Saving: PNG or SVG by name, the same SVG as the report's file.
    figures["spectrum"].save(tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures["spectrum"].save(str(tmp_path / "spectrum.svg"))
    assert (tmp_path / "spectrum.svg").read_text() == figures["spectrum"].svg
    with pytest.raises(embgeom.EmbgeomError, match=r"spectrum\.jpg.*\.svg or \.png"):
        figures["spectrum"].save(tmp_path / "spectrum.jpg")
    index = result.report(tmp_path / "report")
    assert Path(index).name == "index.html"
    for figure in figures:
        assert (tmp_path / "report" / "figures" / f"{figure.id}.svg").read_text() == figure.svg
    # Without labels, the class figures are skipped, with why.
    unlabelled = embgeom.analyze(x, figures=True).figures()
    assert "08-cdnv" in [id for id, _, _ in unlabelled.skipped]
    with pytest.raises(KeyError, match="needs class labels"):
        unlabelled["cdnv"]
    # A pickled result keeps its numbers and table, not its figure data.
    copy = pickle.loads(pickle.dumps(result))
    assert copy.nc1 == result.nc1 and copy._repr_html_() == result._repr_html_()
    with pytest.raises(embgeom.EmbgeomError, match="unpickled"):
        copy.figures()


def test_a_result_without_figure_data_says_how_to_get_it():
    x, y = digits()
    for result in (embgeom.analyze(x, labels=y), embgeom.Accumulator().update(x, y).finalize()):
        with pytest.raises(embgeom.EmbgeomError, match="figures=True"):
            result.figures()
    assert [f.id for f in embgeom.analyze_file(DIGITS, figures=True).figures()] == FIGURE_IDS


def read_safetensors(path: Path) -> dict:
    """The arrays of a .safetensors file."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    dtypes = {"F16": np.float16, "F32": np.float32, "I64": np.int64}
    body = raw[8 + size:]
    return {k: np.frombuffer(body[v["data_offsets"][0]:v["data_offsets"][1]],
                             dtype=dtypes[v["dtype"]]).reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}


def test_report_compare_and_track_take_arrays_and_write_only_their_folder(tmp_path):
    os.chdir(tmp_path)
    before = leftovers()
    x, y = digits()
    index = embgeom.report(x, labels=y, out="mine")
    assert index == os.path.join("mine", "index.html")
    assert "embgeom report: mine" in Path(index).read_text()
    # Running again replaces the report: its inputs are the same.
    assert embgeom.report(x, labels=y, out="mine") == index

    runs = {loss: [read_safetensors(folder / f"ckpt_epoch_{e:04d}.safetensors")
                   for e in range(1, 13)]
            for loss, folder in (("supcon", SUPCON), ("simclr", SIMCLR))}
    labels = runs["supcon"][0]["labels"]
    last = {loss: checkpoints[-1]["embeddings"] for loss, checkpoints in runs.items()}
    from_arrays = embgeom.compare(last, labels=labels, out="compared")
    from_files = embgeom.compare([SUPCON / "ckpt_epoch_0012.safetensors",
                                  SIMCLR / "ckpt_epoch_0012.safetensors"], out="files")
    assert [i["name"] for i in from_arrays["document"]["inputs"]] == ["supcon", "simclr"]
    assert [i["name"] for i in from_files["document"]["inputs"]] == [
        "ckpt_epoch_0012-1", "ckpt_epoch_0012-2"]
    # The files hold views too (which change uniformity); the class metrics are the same.
    want = {m["metric"]: m["values"] for m in from_files["document"]["metrics"]}
    got = {m["metric"]: m["values"] for m in from_arrays["document"]["metrics"]}
    for metric in ("nc1", "cdnv", "etf_distance", "knn_accuracy", "rankme"):
        assert got[metric] == pytest.approx(want[metric], rel=1e-12), metric
    assert from_arrays["document"]["cka"] and "supcon" in from_arrays["table"]
    assert embgeom.compare(last, labels=labels, out="compared")["index"] == from_arrays["index"]
    only = embgeom.compare(last, out="similarity-only", similarity_only=True)
    assert only["document"]["similarity"] == from_arrays["document"]["similarity"]
    assert only["document"]["metrics"] == [] and "linear CKA" in only["table"]

    steps = {12 * (k + 1): c["embeddings"] for k, c in enumerate(runs["supcon"])}
    tracked = embgeom.track(steps, labels=labels, out="tracked", checks=["nc1 increased"])
    folder = embgeom.track(SUPCON, out="folder", checks=["nc1 increased"])
    assert tracked["checkpoints"] == tracked["analysed"] == 12
    assert tracked["checks"] == folder["checks"] and tracked["checks"][0][1]
    in_order = embgeom.track(list(steps.values()), labels=labels, out="tracked",
                             checks=["nc1 increased"])
    assert in_order["cached"] == 12 and "at step 11" in in_order["checks"][0][2]
    assert sorted(os.listdir(tmp_path)) == ["compared", "files", "folder", "mine", "similarity-only",
                                         "tracked"]
    assert leftovers() == before


SENTINEL = 123.456


@pytest.mark.parametrize("call", [
    lambda a: embgeom.analyze_file(a),
    lambda a: embgeom.analyze_file(DIGITS, labels=a),
    lambda a: embgeom.analyze_file(DIGITS, views=[a, a]),
    lambda a: embgeom.analyze_file(DIGITS, classifier=a),
    lambda a: embgeom.analyze_sharded(a),
    lambda a: embgeom.analyze_sharded(SUPCON, classifier=a),
    lambda a: embgeom.ray.analyze(a),
    lambda a: embgeom.report(a, out=a),
    lambda a: embgeom.report(DIGITS, out="unused", labels=a),
    lambda a: embgeom.report(a, out="unused", labels="labels.npy"),
    lambda a: embgeom.compare(a, out="unused"),
    lambda a: embgeom.compare([a, a], out=a),
    lambda a: embgeom.compare([a], out="unused"),
    lambda a: embgeom.track(a, out="unused"),
    lambda a: embgeom.track([a, a], out=a),
    lambda a: embgeom.track(SUPCON, out="unused", labels=a),
    lambda a: embgeom.analyze(a, labels=a),
    lambda a: embgeom.analyze(a[:, :, None]),
    lambda a: embgeom.analyze("embeddings.npy"),
    lambda a: embgeom.nc1(a, labels=a[:, 0].astype(str)[:5]),
    lambda a: embgeom.Accumulator().update(a).update(a[:, :3]),
    lambda a: embgeom.Accumulator().merge(a),
    lambda a: embgeom.Accumulator.from_bytes(a),
    lambda a: embgeom.analyze(a).value(a),
    lambda a: embgeom.analyze(a).report(a),
    lambda a: embgeom.analyze(a, figures=True).figures()[0].save(a),
    lambda a: embgeom.Monitor(holdout=(a, a)).report(0),
], ids=lambda call: inspect.getsource(call).split("lambda a: ")[1].split(",\n")[0][:60])
def test_no_error_message_shows_an_arrays_contents(call, tmp_path):
    os.chdir(tmp_path)
    array = np.full((300, 40), SENTINEL)
    with pytest.raises(Exception) as caught:
        call(array)
    message = str(caught.value)
    assert "123.4" not in message and "..." not in message and len(message) < 400, message
    assert not list(tmp_path.iterdir()), "nothing is written when the call fails"


def stub_metric_properties() -> list:
    """The properties typed ``Optional[float]`` of ``Analysis`` in ``analysis.pyi``, in order."""
    tree = ast.parse((PACKAGE / "analysis.pyi").read_text())
    analysis = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Analysis")
    return [f.name for f in analysis.body
            if isinstance(f, ast.FunctionDef)
            and any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)
            and ast.unparse(f.returns) == "Optional[float]"]


def test_every_catalogued_metric_is_a_typed_attribute_listed_in_the_stub():
    keys = [m["metric"] for m in embgeom.catalogue()]
    assert stub_metric_properties() == [k.replace(".", "_") for k in keys]
    x, y = digits()
    result = embgeom.analyze(x, labels=y, views=[x, x[::-1]])
    for key in keys:
        attribute = key.replace(".", "_")
        assert isinstance(inspect.getattr_static(embgeom.Analysis, attribute), property), key
        assert getattr(result, attribute) == result.value(key), key
        assert getattr(embgeom.Analysis, attribute).__doc__, key
    assert not hasattr(embgeom.Analysis, "__getattr__")
    with pytest.raises(AttributeError):
        result.not_a_metric


def public_callables():
    """Every public function, class and method of the package (properties aside)."""
    modules = [embgeom, embgeom.ray]
    for module in modules:
        for name in getattr(module, "__all__", None) or [n for n in vars(module)
                                                          if not n.startswith("_")]:
            item = getattr(module, name)
            if getattr(item, "__module__", "").startswith("embgeom") and callable(item):
                yield f"{module.__name__}.{name}", item
                if inspect.isclass(item):
                    for method, member in vars(item).items():
                        member = getattr(member, "__func__", member)  # class and static methods
                        if not method.startswith("_") and inspect.isfunction(member):
                            yield f"{module.__name__}.{name}.{method}", member


PUBLIC = list(public_callables())


@pytest.mark.parametrize("name,item", PUBLIC, ids=[name for name, _ in PUBLIC])
def test_public_docstrings_follow_args_returns_example(name, item):
    doc = inspect.getdoc(item) or ""
    assert "Example:" in doc, name
    if inspect.isclass(item):
        return
    signature = inspect.signature(item)
    parameters = [p for p in signature.parameters if p not in ("self", "cls")]
    if parameters:
        assert "Args:" in doc, name
        for parameter in parameters:
            assert f"    {parameter.lstrip('*')}" in doc or f"**{parameter}" in doc, \
                f"{name}: {parameter} is not documented"
    if signature.return_annotation not in ("None", None, inspect.Signature.empty):
        assert "Returns:" in doc, name


def test_the_example_notebook_shows_a_table_and_a_figure():
    cells = runpy.run_path(str(ROOT / "crates" / "python" / "examples" / "notebook.py"))
    try:
        assert cells["table_html"].startswith('<div class="embgeom-analysis">')
        assert "<table>" in cells["table_html"] and "NC1" in cells["table_html"]
        assert cells["figure_svg"].startswith("<svg") and "</svg>" in cells["figure_svg"]
        assert (cells["OUT"] / "spectrum.png").exists()
        assert (cells["OUT"] / "digits" / "index.html").exists()
        assert cells["tracked"]["checkpoints"] == 12
    finally:
        shutil.rmtree(cells["OUT"])
