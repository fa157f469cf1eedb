"""Sharded datasets from Python: embgeom.analyze_sharded and embgeom.ray.analyze on a local
Ray cluster of 2 CPUs give the analysis of the concatenated file; a corrupt shard stops the
run with its name; the CLI's --ray runs the same tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embgeom
from test_embgeom import embgeom_binary, needs, same_leaves



def write_shards(root: Path, sizes=(700, 1, 499, 1300, 500), d: int = 24, dtype=np.float64):
    """LAION's layout: img_emb/img_emb_N.npy and metadata/metadata_N.parquet (column label);
    returns the concatenated rows and labels."""
    pa = needs("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    means = rng.standard_normal((12, d)) * 2.0
    (root / "img_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    all_rows, all_labels = [], []
    for i, size in enumerate(sizes):
        labels = rng.integers(0, 12, size)
        rows = (means[labels] + rng.standard_normal((size, d))).astype(dtype)
        np.save(root / "img_emb" / f"img_emb_{i}.npy", rows)
        pq.write_table(pa.table({"label": labels}), root / "metadata" / f"metadata_{i}.parquet")
        all_rows.append(rows)
        all_labels.append(labels)
    return np.concatenate(all_rows), np.concatenate(all_labels)


def metrics(result) -> dict:
    return result.to_dict()["metrics"]


def without_class_ranks(document_metrics: dict) -> dict:
    """Per-class effective ranks are not computed for shards."""
    out = json.loads(json.dumps(document_metrics))
    for row in out.get("per_class") or []:
        row.pop("effective_rank", None)
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    ray = needs("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_analyze_sharded_equals_the_concatenated_file(tmp_path):
    rows, labels = write_shards(tmp_path / "set")
    whole = embgeom.analyze(rows, labels=labels)
    sharded = embgeom.analyze_sharded(tmp_path / "set", label_key="label")
    assert sharded.n == 3000 and sharded.num_classes == 12
    same_leaves(without_class_ranks(metrics(sharded)), without_class_ranks(metrics(whole)))
    assert any("per-class effective ranks" in w for w in sharded.warnings)


def test_ray_with_two_workers_equals_the_local_run(tmp_path, ray_cluster):
    import embgeom.ray

    write_shards(tmp_path / "set")
    local = embgeom.analyze_sharded(tmp_path / "set", label_key="label", knn_queries=500)
    on_ray = embgeom.ray.analyze(tmp_path / "set", label_key="label", knn_queries=500)
    same_leaves(metrics(on_ray), metrics(local))
    assert on_ray.to_dict()["inputs"] == local.to_dict()["inputs"]
    # Above max_exact: the sampled uniformity is the same sample on Ray.
    sampled = embgeom.ray.analyze(tmp_path / "set", label_key="label", max_exact=1000,
                                  sample_rows=400)
    assert sampled.to_dict()["metrics"]["uniformity"]["method"] == "sampled rows"
    assert sampled.uniformity == embgeom.analyze_sharded(
        tmp_path / "set", label_key="label", max_exact=1000, sample_rows=400).uniformity


def test_a_bad_shard_stops_the_ray_run_with_its_name(tmp_path, ray_cluster):
    import embgeom.ray

    write_shards(tmp_path / "set")
    bad = np.load(tmp_path / "set" / "img_emb" / "img_emb_3.npy")
    bad[17, 4] = np.nan
    np.save(tmp_path / "set" / "img_emb" / "img_emb_3.npy", bad)
    with pytest.raises(embgeom.EmbgeomError, match=r"img_emb_3\.npy.*row 17"):
        embgeom.ray.analyze(tmp_path / "set", label_key="label")
    with pytest.raises(TypeError, match="directory of shards"):
        embgeom.ray.analyze(ray_cluster.data.range(10))


def test_the_cli_runs_the_shard_tasks_on_ray(tmp_path):
    needs("ray")
    binary = embgeom_binary()
    write_shards(tmp_path / "set", sizes=(300, 200, 500))
    env = dict(os.environ, EMBGEOM_PYTHON=sys.executable)

    def run(*extra: str) -> dict:
        out = subprocess.run([binary, "analyze", str(tmp_path / "set"), "--label-key", "label",
                              "--json", "-", *extra], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    local, on_ray = run(), run("--ray", "local")
    same_leaves(on_ray["metrics"], local["metrics"])


def write_modalities(root: Path, sizes=(150, 90, 210), d: int = 16):
    """LAION's two modalities side by side: img_emb/img_emb_N.npy and text_emb/text_emb_N.npy
    (row i of shard N of each one item), f32."""
    rng = np.random.default_rng(9)
    for name in ("img_emb", "text_emb"):
        (root / name).mkdir(parents=True)
    for i, size in enumerate(sizes):
        image = rng.standard_normal((size, d)).astype(np.float32)
        text = (image + 0.7 * rng.standard_normal((size, d)) + 0.8).astype(np.float32)
        np.save(root / "img_emb" / f"img_emb_{i}.npy", image)
        np.save(root / "text_emb" / f"text_emb_{i}.npy", text)


def test_sharded_modalities_on_ray_equal_the_local_run(tmp_path, ray_cluster):
    """``embgeom.ray.analyze_modalities`` and ``embgeom analyze --modalities DIR DIR --ray``
    give the document of the same command on one machine (every pair's gap, retrieval,
    objectives and shift steps; each modality's analysis)."""
    import embgeom.ray

    write_modalities(tmp_path / "set")
    dirs = [str(tmp_path / "set" / "img_emb"), str(tmp_path / "set" / "text_emb")]
    names = ["--modality-names", "image", "text", "--shifts", "0.5,1"]
    local = json.loads(subprocess.run(
        [embgeom_binary(), "analyze", "--modalities", *dirs, *names, "--json", "-"],
        capture_output=True, text=True, check=True).stdout)
    on_ray = embgeom.ray.analyze_modalities({"image": dirs[0], "text": dirs[1]},
                                            shifts=[0.5, 1.0]).to_dict()
    assert on_ray["pairs"] == local["pairs"]
    assert on_ray["gap_matrix"] == local["gap_matrix"]
    for mine, theirs in zip(on_ray["modalities"], local["modalities"]):
        same_leaves(mine["analysis"]["metrics"], theirs["analysis"]["metrics"])
    env = dict(os.environ, EMBGEOM_PYTHON=sys.executable)
    cli = subprocess.run(
        [embgeom_binary(), "analyze", "--modalities", *dirs, *names, "--ray", "local",
         "--json", "-"], capture_output=True, text=True, env=env)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["pairs"] == local["pairs"]
    np.save(tmp_path / "set" / "text_emb" / "text_emb_1.npy", np.zeros((89, 16), np.float32))
    with pytest.raises(embgeom.EmbgeomError, match="text_emb_1.npy"):
        embgeom.ray.analyze_modalities({"image": dirs[0], "text": dirs[1]})
