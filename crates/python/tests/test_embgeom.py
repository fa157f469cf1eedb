"""Tests of the embgeom Python package: equality with the CLI, public reference formulas,
zero copy, tensors, errors, the monitor, interruption, the stubs."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import embgeom

ROOT = Path(__file__).resolve().parents[3]
DIGITS = ROOT / "data" / "digits.npz"
SUPCON = ROOT / "data" / "fashion-supcon" / "ckpt_epoch_0012.safetensors"
CI = os.environ.get("CI") is not None


def needs(module: str):
    """Import an optional dependency; without it the test is skipped with the reason shown,
    except under CI, where it fails (CI installs what the tests need)."""
    try:
        return __import__(module)
    except ImportError as error:
        if CI:
            pytest.fail(f"{module} is required under CI: {error}")
        pytest.skip(f"{module} is not installed: {error}")


def embgeom_binary() -> str:
    """The built embgeom binary; without it the test is skipped with the reason shown, except
    under CI, where it fails."""
    binary = os.environ.get("EMBGEOM_BIN") or str(
        Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/embgeom-target"))
        / "release" / "embgeom")
    if not Path(binary).exists():
        if CI:
            pytest.fail(f"the embgeom binary is required under CI: {binary}")
        pytest.skip(f"the embgeom binary is not built: {binary}")
    return binary


def cli(*args: str) -> dict:
    binary = embgeom_binary()
    out = subprocess.run([binary, "analyze", *args, "--json", "-"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def gaussian(n: int, d: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def same_leaves(a, b, path="$"):
    """Every leaf equal, numbers to 1e-12 relative."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), path
        for k in a:
            same_leaves(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same_leaves(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert abs(a - b) <= 1e-12 * max(abs(a), abs(b)), f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


@pytest.mark.parametrize("path", [DIGITS, SUPCON])
def test_every_metric_equals_the_cli_on_the_bundled_data(path):
    relative = str(path.relative_to(ROOT))
    want = cli(relative)
    os.chdir(ROOT)
    from_file = embgeom.analyze_file(relative).to_dict()
    same_leaves(want["metrics"], from_file["metrics"])
    assert from_file["inputs"] == want["inputs"]


def test_in_memory_arrays_equal_the_cli():
    want = cli("data/digits.npz")
    data = np.load(DIGITS)
    views = [data["views"][:, v, :] for v in range(data["views"].shape[1])]
    got = embgeom.analyze(data["embeddings"], labels=data["labels"], views=views).to_dict()
    same_leaves(want["metrics"], got["metrics"])


def test_single_metrics_equal_the_full_analysis_to_the_last_bit():
    x, y = gaussian(1500, 24), np.arange(1500) % 7
    full = embgeom.analyze(x, labels=y)
    assert embgeom.uniformity(x) == full.uniformity
    assert embgeom.nc1(x, y) == full.nc1
    assert embgeom.etf_distance(x, y) == full.etf_distance
    assert embgeom.cdnv(x, y) == full.cdnv
    assert embgeom.rankme(x) == full.rankme
    assert embgeom.effective_rank(x) == full.effective_rank
    assert embgeom.knn_accuracy(x, y) == full.knn_accuracy
    assert embgeom.class_alignment(x, y) == full.class_alignment
    views = embgeom.analyze(views=[x, x + 0.1])
    assert embgeom.alignment(x, x + 0.1) == views.alignment


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_against_wang_and_isola_reference_formulas_in_numpy():
    x, y = gaussian(800, 16, 1), gaussian(800, 16, 2)
    ux, uy = unit(x), unit(x + 0.3 * y)
    # align_loss(x, y, alpha=2) = (x - y).norm(dim=1).pow(2).mean()
    align = np.mean(np.linalg.norm(ux - uy, axis=1) ** 2)
    assert embgeom.alignment(x, x + 0.3 * y) == pytest.approx(align, rel=1e-6)
    # uniform_loss(x, t=2) = pdist(x).pow(2).mul(-t).exp().mean().log()
    i, j = np.triu_indices(len(ux), 1)
    d2 = np.sum((ux[i] - ux[j]) ** 2, axis=1)
    uniform = np.log(np.mean(np.exp(-2 * d2)))
    assert embgeom.uniformity(x) == pytest.approx(uniform, rel=1e-6)


def test_against_torch_pdist_when_torch_is_importable():
    torch = needs("torch")
    x = gaussian(600, 32, 3)
    t = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    reference = torch.pdist(t, p=2).pow(2).mul(-2).exp().mean().log().item()
    assert embgeom.uniformity(x) == pytest.approx(reference, rel=1e-5)


def test_nc1_and_rankme_against_numpy_linear_algebra():
    rng = np.random.default_rng(4)
    means = rng.standard_normal((5, 12)) * 3
    y = np.arange(1000) % 5
    h = means[y] + rng.standard_normal((1000, 12))
    # NC1 with np.linalg.pinv (unweighted global mean of the class means).
    mu = np.stack([h[y == c].mean(0) for c in range(5)])
    mu_g = mu.mean(0)
    sw = sum(np.outer(r - mu[c], r - mu[c]) for r, c in zip(h, y)) / len(h)
    m = mu - mu_g
    sb = m.T @ m / 5
    want_nc1 = np.trace(sw @ np.linalg.pinv(sb)) / 5
    assert embgeom.nc1(h, y) == pytest.approx(want_nc1, rel=1e-9)
    # RankMe from np.linalg.svd of the raw rows, eps = 1e-7.
    s = np.linalg.svd(h, compute_uv=False)
    p = s / s.sum() + 1e-7
    want_rankme = np.exp(-np.sum(p * np.log(p)))
    assert embgeom.rankme(h) == pytest.approx(want_rankme, rel=1e-9)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_a_large_f32_c_array_is_read_in_place():
    x = unit(gaussian(400_000, 64, 5)).astype(np.float32)  # 102 MB, already unit rows
    before = peak_rss_bytes()
    result = embgeom.analyze(x, normalize=False, uniformity=False, knn=False)
    grown = peak_rss_bytes() - before
    assert result.in_place
    assert result.n == 400_000
    assert grown < 0.25 * x.nbytes, f"peak memory grew by {grown / 1e6:.0f} MB"
    fortran = np.asfortranarray(x[:1000])
    assert not embgeom.analyze(fortran, normalize=False, uniformity=False, knn=False).in_place


def test_inputs_of_every_kind_give_the_same_numbers():
    x, y = gaussian(300, 8, 6), np.arange(300) % 3
    want = embgeom.analyze(x, labels=y)
    for other in (x.astype(np.float64), x.astype(np.float16).astype(np.float32),
                  x.tolist(), np.asfortranarray(x)):
        got = embgeom.analyze(other, labels=y)
        assert got.nc1 == pytest.approx(want.nc1, rel=1e-3)
    same = embgeom.analyze(x.tolist(), labels=[f"c{v}" for v in y])
    assert same.num_classes == 3
    assert [p["class"] for p in same.per_class] == ["c0", "c1", "c2"]


def test_torch_tensors_with_gradients():
    torch = needs("torch")
    x, y = gaussian(200, 8, 7), np.arange(200) % 4
    tensor = torch.from_numpy(x).requires_grad_(True) * 1.0
    result = embgeom.analyze(tensor, labels=torch.from_numpy(y))
    assert result.nc1 == embgeom.analyze(x, labels=y).nc1
    assert embgeom.uniformity(tensor.to(torch.bfloat16)) == pytest.approx(
        embgeom.uniformity(x), abs=2e-2)


def test_bad_inputs_raise_embgeom_error_with_the_cli_message():
    x = gaussian(10, 4, 8)
    x[3, 1] = np.nan
    with pytest.raises(embgeom.EmbgeomError, match=r"embeddings: row 3, column 1 is not finite"):
        embgeom.analyze(x)
    assert issubclass(embgeom.EmbgeomError, ValueError)
    with pytest.raises(embgeom.EmbgeomError, match=r"labels: 9 values, but embeddings has 10 rows"):
        embgeom.analyze(gaussian(10, 4), labels=np.arange(9))
    with pytest.raises(embgeom.EmbgeomError, match=r"^invalid parameter t = 1e39: must be in \(0, 10000\]"):
        embgeom.analyze(gaussian(10, 4), t=1e39)
    with pytest.raises(embgeom.EmbgeomError, match=r"expected a 2-D array"):
        embgeom.analyze(np.zeros(5))
    with pytest.raises(embgeom.EmbgeomError, match=r"missing\.npy: cannot read"):
        embgeom.analyze_file("missing.npy")
    with pytest.raises(TypeError, match="unknown option"):
        embgeom.analyze(gaussian(10, 4), temperature=1)


def test_tables_and_catalogue():
    result = embgeom.analyze(gaussian(200, 8, 9), labels=np.arange(200) % 4)
    frame = result.to_pandas()
    assert set(frame.columns) >= {"metric", "value", "ideal", "direction", "paper", "link"}
    assert frame.set_index("metric").loc["nc1", "ideal"] == 0
    assert {r["metric"] for r in embgeom.catalogue()} >= {"uniformity", "nc1", "rankme"}
    assert "Class collapse" in str(result)
    polars = needs("polars")
    assert result.to_polars().height == len(frame)
    del polars


def test_monitor_logs_every_k_steps_and_at_report():
    logged = []
    monitor = embgeom.Monitor(log=lambda scalars, step: logged.append((step, scalars)), every=2)
    rng = np.random.default_rng(10)
    for step in range(1, 5):
        monitor.update(rng.standard_normal((50, 6)).astype(np.float32), np.arange(50) % 5)
        monitor.step(step)
    assert [s for s, _ in logged] == [2, 4]
    assert "geometry/nc1" in logged[0][1] and "geometry/uniformity" in logged[0][1]
    held = embgeom.Monitor(holdout=(gaussian(60, 6), np.arange(60) % 3))
    assert held.report(7)["geometry/nc1"] == embgeom.nc1(gaussian(60, 6), np.arange(60) % 3)


def test_ctrl_c_interrupts_a_long_computation():
    code = (
        "import numpy as np, embgeom, time, sys\n"
        "x = np.random.default_rng(0).standard_normal((150000, 64)).astype(np.float32)\n"
        "print('ready', flush=True)\n"
        "start = time.time()\n"
        "try:\n"
        "    embgeom.uniformity(x)\n"
        "    print('finished', flush=True)\n"
        "except KeyboardInterrupt:\n"
        "    print(f'interrupted {time.time() - start:.1f}', flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert out.startswith("interrupted"), out
    assert float(out.split()[1]) < 10


def test_report_and_track_run_the_cli_engines(tmp_path):
    index = embgeom.report(SUPCON, tmp_path / "report")
    assert Path(index).name == "index.html" and Path(index).exists()
    outcome = embgeom.track(ROOT / "data" / "fashion-supcon", tmp_path / "track",
                            checks=["etf_distance > 1"])
    assert outcome["checkpoints"] == 12 and outcome["checks"][0][1]


def test_the_stubs_match_the_compiled_module_and_the_result_class():
    needs("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", "embgeom._embgeom",
                          "embgeom.analysis", "--ignore-missing-stub"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_lightning_callback_logs_the_geometry_of_a_two_epoch_fit(tmp_path):
    torch = needs("torch")
    needs("lightning")
    import lightning.pytorch as pl
    from embgeom.lightning import GeometryCallback

    class Toy(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(8, 4)

        def training_step(self, batch, _):
            x, y = batch
            z = self.encoder(x)
            loss = z.pow(2).mean()
            self.log("loss", loss)
            return {"loss": loss, "embeddings": z, "labels": y}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    x = torch.randn(64, 8)
    y = torch.arange(64) % 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    logger = pl.loggers.CSVLogger(tmp_path)
    trainer = pl.Trainer(max_epochs=2, logger=logger, callbacks=[GeometryCallback()],
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False)
    trainer.fit(Toy(), loader)
    logged = trainer.logged_metrics
    assert "geometry/nc1" in logged and "geometry/uniformity" in logged
    metrics_file = Path(logger.log_dir) / "metrics.csv"
    assert "geometry/rankme" in metrics_file.read_text()


def test_accumulator_states_merge_pickle_and_match_the_analysis():
    import pickle

    rng = np.random.default_rng(11)
    means = rng.standard_normal((6, 20)) * 2
    y = np.arange(3000) % 6
    x = (means[y] + rng.standard_normal((3000, 20))).astype(np.float32)
    whole = embgeom.Accumulator().update(x, y).finalize()
    assert isinstance(whole, embgeom.Analysis)
    cuts = [0, 700, 1500, 1501, 3000]
    parts = [embgeom.Accumulator().update(x[a:b], y[a:b]) for a, b in zip(cuts, cuts[1:])]
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        merged = embgeom.Accumulator()
        for k in order:
            merged.merge(pickle.loads(pickle.dumps(parts[k])))
        got = merged.finalize()
        assert got.n == 3000 and got.num_classes == 6
        for key in ("nc1", "nc1_quotient", "etf_distance", "cdnv", "effective_rank", "rankme",
                    "normalized_std", "class_alignment", "nc2_equinorm"):
            assert got.value(key) == pytest.approx(whole.value(key), rel=1e-12), key
    full = embgeom.analyze(x, labels=y)
    for key in ("nc1", "etf_distance", "cdnv", "effective_rank", "rankme", "normalized_std",
                "class_alignment", "nc2_equiangularity", "nc2_max_angle", "simplex_angles",
                "simplex_angles.mean_norm", "spectrum.top_share", "alpha_req"):
        assert whole.value(key) == pytest.approx(full.value(key), rel=1e-9), key
    assert np.allclose(whole.spectrum, full.spectrum, rtol=1e-9, atol=1e-15)
    # What needs the rows is absent, and the result says why.
    assert whole.uniformity is None and whole.knn_accuracy is None
    assert whole.ncc_accuracy is None and whole.to_dict()["metrics"]["ncc_accuracy"] is None
    assert any("need the rows" in w for w in whole.warnings)
    assert "<table" in whole._repr_html_() and "NaN" not in whole._repr_html_()
    assert "NC1" in str(whole)
    with pytest.raises(embgeom.EmbgeomError, match="version 7"):
        data = bytearray(parts[0].to_bytes())
        data[8:12] = (7).to_bytes(4, "little")
        embgeom.Accumulator.from_bytes(bytes(data))
    with pytest.raises(embgeom.EmbgeomError, match="every batch must carry labels"):
        embgeom.Accumulator().update(x[:10], y[:10]).update(x[10:20])


def test_a_mapped_file_truncated_during_analysis_raises_and_the_interpreter_lives(tmp_path):
    """The file is truncated once it is mapped (seen in /proc/self/maps), while the analysis
    runs in another thread: the call raises EmbgeomError naming it instead of SIGBUS ending
    the interpreter, and the next call works."""
    import threading

    path = tmp_path / "shrinking.npy"
    rows = np.random.default_rng(0).standard_normal((60_000, 128)).astype(np.float32)
    np.save(path, rows)
    outcome = {}

    def run():
        try:
            outcome["result"] = embgeom.analyze_file(path)
        except embgeom.EmbgeomError as error:
            outcome["error"] = str(error)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while "shrinking.npy" not in Path("/proc/self/maps").read_text():
        assert worker.is_alive() and time.monotonic() < deadline, "the file was never mapped"
        time.sleep(0.002)
    os.truncate(path, 128)
    worker.join()
    assert "error" in outcome, outcome
    assert "shrinking.npy" in outcome["error"] and "changed while it was read" in outcome["error"]
    assert embgeom.analyze_file(DIGITS).n == 1797


def test_isotropy_readings_against_isoscore_and_the_papers_formulas():
    """IsoScore against its package (pip IsoScore 2.0.1); the exact mean cosine (Ethayarajh
    2019), NESum (He & Ozay 2022) and Tsitsulin et al.'s self-clustering, numerical rank and
    pseudo-condition number written out in NumPy as their code computes them."""
    reference = needs("IsoScore.IsoScore").IsoScore
    rng = np.random.default_rng(21)
    for n, d in ((300, 24), (40, 90)):
        x = rng.standard_normal((n, d)) * np.linspace(3.0, 0.2, d) + 0.5
        result = embgeom.analyze(x, uniformity=False, knn=False)
        want = float(reference.IsoScore(x))
        # The package computes in f32 on torch's default dtype for its constants.
        assert result.isoscore == pytest.approx(want, rel=1e-6)
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        gram = u @ u.T
        assert result.mean_cosine == pytest.approx(
            (gram.sum() - np.trace(gram)) / (n * (n - 1)), rel=1e-9)
        expected = n + n * (n - 1) / d
        assert result.self_clustering == pytest.approx(
            ((gram ** 2).sum() - expected) / (n * n - expected), rel=1e-9)
        s = np.linalg.svd(x, compute_uv=False)
        assert result.numerical_rank == pytest.approx((x ** 2).sum() / s[0] ** 2, rel=1e-9)
        sc = np.linalg.svd(x - x.mean(0), compute_uv=False)[: min(n - 1, d)]
        assert result.pseudo_condition_number == pytest.approx(sc[0] / sc[-1], rel=1e-9)
        cov = np.cov(u.T)
        eig = np.linalg.eigvalsh(cov)
        assert result.nesum == pytest.approx(eig.sum() / eig.max(), rel=1e-9)
        lam = np.linalg.eigvalsh(np.cov(x.T))
        pr = lam.sum() ** 2 / (lam ** 2).sum()
        assert result.participation_ratio == pytest.approx(pr, rel=1e-9)


def test_intrinsic_dimension_equals_scikit_dimension():
    """TwoNN (both methods) and the Levina-Bickel MLE (k = 20, harmonic mean) against
    scikit-dimension 0.5.0 on the same normalised rows, every row a query; duplicate rows
    are counted and left out where the package would divide by zero."""
    skdim = needs("skdim")
    rng = np.random.default_rng(3)
    for n, d, dim in ((800, 30, 4), (500, 12, 2)):
        x = 0.2 * rng.standard_normal((n, dim)) @ rng.standard_normal((dim, d))
        x[:, 0] += 3.0
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        result = embgeom.analyze(x, uniformity=False)
        assert result.twonn == pytest.approx(skdim.id.TwoNN().fit(u).dimension_, rel=1e-9)
        assert result.twonn_ml == pytest.approx(
            skdim.id.TwoNN(method="mle").fit(u).dimension_, rel=1e-9)
        assert result.mle_id == pytest.approx(skdim.id.MLE().fit(u).dimension_, rel=1e-9)
    doubled = np.vstack([x, x[:7]])
    result = embgeom.analyze(doubled, uniformity=False)
    document = result.to_dict()["metrics"]["twonn"]
    assert (document["points"], document["duplicates"]) == (507, 14)
    assert np.isfinite(result.twonn) and np.isfinite(result.mle_id)
    assert any("exact duplicate" in w for w in result.warnings)


def test_hubness_equals_scikit_hubness_formulas():
    """Hubness with scikit-hubness's conventions (k = 10, hub_size = 2, self excluded), its
    estimation.py formulas written out in NumPy and SciPy (the package, 0.21.2, pins
    scikit-learn 0.21.3 and uses ``np.int``: it installs on neither Python 3.11 nor NumPy 2)."""
    stats = needs("scipy.stats").stats
    rng = np.random.default_rng(8)
    x = rng.standard_normal((600, 50)) * rng.lognormal(0.0, 0.8, (600, 1))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = u @ u.T
    np.fill_diagonal(sims, -np.inf)
    neighbours = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    occ = np.bincount(neighbours.ravel(), minlength=600)
    n_test, k = 600, 10
    want = {
        "hub_skewness": stats.skew(occ),
        "robinhood": 0.5 * np.abs(occ - occ.mean()).sum() / occ.sum(),
        "hub_gini": np.abs(occ[None, :] - occ[:, None]).sum() / (2 * 600 * occ.sum()),
        "antihub_occurrence": np.sum(occ == 0) / occ.size,
        "hub_occurrence": occ[occ >= 2 * k].sum() / k / n_test,
        "hub_skewness.atkinson": 1 - np.mean(occ ** 0.5) ** 2 / occ.mean(),
        "hub_skewness.groupie_ratio": occ.max() / n_test / k,
    }
    result = embgeom.analyze(x, uniformity=False)
    for key, value in want.items():
        assert result.value(key) == pytest.approx(value, rel=1e-12, abs=1e-15), key
    histogram = result.to_dict()["metrics"]["hub_skewness"]["histogram"]
    assert {v: c for v, c in histogram} == {v: c for v, c in enumerate(np.bincount(occ)) if c}


def test_the_sentence_demo_shows_anisotropy_intrinsic_dimension_and_hubs():
    """The committed all-MiniLM-L6-v2 embeddings of the fortunes corpus (data/sentences):
    anisotropic, of intrinsic dimension far below 384, with hubs and the duplicate rows
    named."""
    path = Path(__file__).resolve().parents[3] / "data" / "sentences" / "fortunes-minilm.npz"
    data = np.load(path)
    assert data["embeddings"].shape == (6684, 384) and data["embeddings"].dtype == np.float16
    result = embgeom.analyze(data["embeddings"], labels=data["labels"], uniformity=False)
    assert 0.05 < result.mean_cosine < 0.2
    assert 15 < result.twonn < 30 and 15 < result.mle_id < 35
    assert result.hub_skewness > 1.0 and 0.2 < result.robinhood < 0.4
    assert result.to_dict()["metrics"]["twonn"]["duplicates"] == 36
    assert 0.4 < result.knn_accuracy < 0.7
    # The rest of the panel on the same real embeddings.
    assert result.isoscore < result.isoscore_star < 0.6 and 0.4 < result.partition_isotropy < 0.7
    assert 15 < result.lda_rank < 28
    assert 0.4 < result.hard_negative_similarity < 0.6 and 0.25 < result.false_negative_rate < 0.45


def test_spectral_contrastive_loss_equals_haochens_batch_loss():
    """The exact loss over all 2,000 rows equals HaoChen et al.'s reference ``D(z1, z2)``
    (models/spectral.py, written out in torch in float64) on the whole set as one batch, for
    the normalised views embgeom measures and for rows inside and outside the unit ball."""
    torch = needs("torch")
    rng = np.random.default_rng(4)
    z1 = rng.standard_normal((2000, 48)) * 0.145  # norms about 1: inside and outside the ball
    z2 = z1 + 0.05 * rng.standard_normal((2000, 48))

    def reference(a: np.ndarray, b: np.ndarray, mu: float = 1.0) -> float:
        a, b = torch.from_numpy(a), torch.from_numpy(b)
        m1 = (torch.norm(a, p=2, dim=1) < np.sqrt(mu)).double().unsqueeze(1)
        m2 = (torch.norm(b, p=2, dim=1) < np.sqrt(mu)).double().unsqueeze(1)
        a = m1 * a + (1 - m1) * torch.nn.functional.normalize(a, dim=1) * np.sqrt(mu)
        b = m2 * b + (1 - m2) * torch.nn.functional.normalize(b, dim=1) * np.sqrt(mu)
        part1 = -2 * torch.mean(a * b) * a.shape[1]
        square = torch.matmul(a, b.T) ** 2
        part2 = torch.mean(torch.triu(square, diagonal=1) + torch.tril(square, diagonal=-1)) \
            * a.shape[0] / (a.shape[0] - 1)
        return float((part1 + part2) / mu)

    unit = [z / np.linalg.norm(z, axis=1, keepdims=True) for z in (z1, z2)]
    result = embgeom.analyze(views=[z1, z2], uniformity=False, knn=False)
    assert result.spectral_contrastive_loss == pytest.approx(reference(*unit), rel=1e-10)
    raw = embgeom.analyze(views=[z1, z2], normalize=False, uniformity=False, knn=False)
    assert raw.spectral_contrastive_loss == pytest.approx(reference(z1, z2), rel=1e-10)
    document = result.to_dict()["metrics"]["spectral_contrastive_loss"]
    assert document["view_pairs"] == 1 and document["mu"] == 1.0


def test_isoscore_star_equals_the_i_star_code():
    """IsoScore* against I-STAR's ``isoscore_star`` (regularizers.py, written out in torch in
    float64: the package is not on PyPI) with its advised C0 = I, on rows scaled so that
    tr C = D, where embgeom's scale-invariant target (tr C / D) I is I; for N < D and N > D and
    two shrinkages."""
    torch = needs("torch")

    def i_star(points: np.ndarray, zeta: float) -> float:
        points = torch.from_numpy(points)
        n = torch.tensor(float(points.shape[1]), dtype=torch.float64)
        cov = (1 - zeta) * torch.cov(points.T) + zeta * torch.eye(points.shape[1],
                                                                   dtype=torch.float64)
        pcs = torch.linalg.svdvals(cov)
        pcs_norm = pcs * torch.sqrt(n) / torch.linalg.vector_norm(pcs)
        defect = torch.linalg.vector_norm(pcs_norm - 1) / torch.sqrt(2 * (n - torch.sqrt(n)))
        return float(((n - defect ** 2 * (n - torch.sqrt(n))) ** 2 - n) / (n * (n - 1)))

    rng = np.random.default_rng(5)
    for n, d in ((400, 32), (30, 80)):
        x = rng.standard_normal((n, d)) * np.linspace(2.0, 0.1, d) + 0.3
        x *= np.sqrt(d / np.trace(np.cov(x.T)))
        for zeta in (0.2, 0.5):
            result = embgeom.analyze(x, uniformity=False, knn=False, isoscore_zeta=zeta)
            assert result.isoscore_star == pytest.approx(i_star(x, zeta), rel=1e-9)
    zero = embgeom.analyze(x, uniformity=False, knn=False, isoscore_zeta=0.0)
    assert zero.isoscore_star == pytest.approx(zero.isoscore, rel=1e-12)
    with pytest.raises(embgeom.EmbgeomError, match="isoscore-zeta"):
        embgeom.analyze(x, uniformity=False, knn=False, isoscore_zeta=1.5)


def test_partition_isotropy_equals_the_common_implementation_with_both_signs():
    """Mu & Viswanath's I(W) as the common ``_isotropy`` code computes it (eigenvectors of the
    uncentred E^T E, Z(c) = sum exp(E c)), over both signs of each eigenvector, on unit rows
    (embgeom normalises), with f64 rows: 1e-9; and the sign a solver happens to pick can only
    raise the minimum and lower the maximum."""
    rng = np.random.default_rng(6)
    for n, d in ((500, 20), (15, 40)):
        x = rng.standard_normal((n, d)) * np.linspace(1.5, 0.3, d)
        x[:, 0] += 1.0
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        _, vectors = np.linalg.eigh(u.T @ u)
        z = np.exp(np.concatenate([u @ vectors, -(u @ vectors)], axis=1)).sum(axis=0)
        result = embgeom.analyze(x, uniformity=False, knn=False)
        assert result.partition_isotropy == pytest.approx(z.min() / z.max(), rel=1e-9)
        one_sign = np.exp(u @ vectors).sum(axis=0)
        assert one_sign.min() / one_sign.max() >= result.partition_isotropy - 1e-12


def test_lidar_equals_stable_pretraining_and_reptrix():
    """LiDAR of two views against the paper's convention as stable-pretraining's callback
    computes it (written out in torch, float64) and against reptrix 0.1.0 itself (installed
    from PyPI) for its own convention; the LDA rank against the same formula with classes."""
    torch = needs("torch")
    get_lidar = needs("reptrix.lidar").lidar.get_lidar
    rng = np.random.default_rng(7)
    n, d = 300, 24
    base = rng.standard_normal((n, d)) * np.linspace(2.0, 0.2, d)
    views = [base + 0.4 * rng.standard_normal((n, d)) for _ in range(2)]
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in views]

    def paper(groups: list, delta: float = 1e-4, eps: float = 1e-8) -> float:
        means = torch.stack([torch.from_numpy(g).mean(0) for g in groups])
        mu = means.mean(0)
        sigma_b = (means - mu).T @ (means - mu) / (len(groups) - 1)
        within = sum((torch.from_numpy(g) - torch.from_numpy(g).mean(0)).T
                     @ (torch.from_numpy(g) - torch.from_numpy(g).mean(0)) for g in groups)
        rows = sum(g.shape[0] for g in groups)
        sigma_w = within / (rows - len(groups)) + delta * torch.eye(d, dtype=torch.float64)
        values, vectors = torch.linalg.eigh(sigma_w)
        root = vectors @ torch.diag(values.clamp(min=eps) ** -0.5) @ vectors.T
        lam = torch.linalg.eigvalsh(root @ sigma_b @ root).clamp(min=0)
        p = (lam + eps) / (lam + eps).sum()
        return float(torch.exp(-(p * torch.log(p)).sum()))

    result = embgeom.analyze(views=views, uniformity=False, knn=False)
    objects = [np.stack([unit[0][i], unit[1][i]]) for i in range(n)]
    # Eigenvalues at round-off differ between the two solvers and each adds eps-sized terms.
    assert result.lidar == pytest.approx(paper(objects), rel=1e-8)
    stacked = torch.from_numpy(np.stack(unit, axis=1))
    want = get_lidar(stacked, num_samples=n, num_augs=2)
    assert result.value("lidar.reptrix") == pytest.approx(float(want), rel=1e-9)
    labels = rng.integers(0, 6, n)
    x = base + 3.0 * rng.standard_normal((6, d))[labels]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    labelled = embgeom.analyze(x, labels=labels, uniformity=False, knn=False)
    classes = [u[labels == c] for c in range(6)]
    assert labelled.lda_rank == pytest.approx(paper(classes), rel=1e-8)


def test_the_hard_negative_profile_equals_a_brute_force_search():
    """The profile against every pair written out in NumPy: the hardest and the 10th hardest
    negative of each anchor, its positive in the other view, and the label agreement."""
    rng = np.random.default_rng(9)
    n, d = 400, 16
    labels = rng.integers(0, 5, n)
    centres = 2.0 * rng.standard_normal((5, d))
    a = centres[labels] + rng.standard_normal((n, d))
    b = a + 0.5 * rng.standard_normal((n, d))
    ua, ub = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (a, b))
    sims = ua @ ua.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    hardest = sims[np.arange(n), order[:, 0]]
    tenth = sims[np.arange(n), order[:, 9]]
    positive = (ua * ub).sum(1)
    result = embgeom.analyze(views=[a, b], labels=labels, uniformity=False)
    document = result.to_dict()["metrics"]["hard_negative_similarity"]
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    assert document["hardest"]["values"] == pytest.approx(np.quantile(hardest, levels), rel=1e-6)
    assert document["kth"]["values"] == pytest.approx(np.quantile(tenth, levels), rel=1e-6)
    assert result.hard_negative_similarity == pytest.approx(np.median(hardest), rel=1e-6)
    assert result.hard_negative_margin == pytest.approx(np.mean(positive - hardest), rel=1e-6)
    assert result.hard_negative_violations == pytest.approx(np.mean(hardest > positive))
    same = labels[order] == labels[:, None]
    assert result.false_negative_rate == pytest.approx(same.mean(), rel=1e-12)
    assert result.false_negative_rate_hardest == pytest.approx(same[:, 0].mean(), rel=1e-12)


def test_paired_modalities_equal_the_cli_and_their_definitions(tmp_path):
    """``analyze_modalities`` on arrays gives the CLI's document on the same files; the gap
    and retrieval against NumPy; several captions per image through a pair map."""
    rng = np.random.default_rng(11)
    images = rng.standard_normal((200, 16))
    texts = images + 0.7 * rng.standard_normal((200, 16))
    texts[:, 2] += 1.0
    result = embgeom.analyze_modalities({"image": images, "text": texts}, shifts=[1.0])
    assert result.names == ["image", "text"]
    u = images / np.linalg.norm(images, axis=1, keepdims=True)
    v = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    gap = result.gap("image", "text")
    assert gap["distance"] == pytest.approx(np.linalg.norm(u.mean(0) - v.mean(0)), rel=1e-12)
    assert gap["components"][0]["dimension"] == 2
    s = u @ v.T
    r1 = np.mean(s.argmax(axis=1) == np.arange(200))
    assert result.retrieval("image", "text")["image_to_text"]["recall_at_1"] == r1
    logits = s / 0.01
    lse_rows = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    lse_cols = np.log(np.exp(logits - logits.max(0)).sum(0)) + logits.max(0)
    info = (lse_rows.sum() + lse_cols.sum() - 2 * np.trace(logits)) / 400
    assert result.retrieval("image", "text")["info_nce"] == pytest.approx(info, rel=1e-10)
    assert len(result.shift("image", "text")) == 1
    subset = embgeom.analyze_modalities({"image": images, "text": texts}, shifts=[],
                                        retrieval_queries=50)
    assert subset.retrieval("image", "text")["image_to_text"]["queries"] == 50
    assert subset.retrieval("image", "text")["info_nce"] is None
    assert result.analysis("text")["schema"] == "embgeom.analysis/1"
    assert "== gap matrix" in str(result) and result._repr_html_().startswith("<pre>")
    np.save(tmp_path / "image.npy", images)
    np.save(tmp_path / "text.npy", texts)
    doc = json.loads(subprocess.run(
        [embgeom_binary(), "analyze", "--modalities", str(tmp_path / "image.npy"),
         str(tmp_path / "text.npy"), "--shifts", "1", "--json", "-"],
        capture_output=True, text=True, check=True).stdout)
    assert doc["pairs"][0]["gap"] == result.to_dict()["pairs"][0]["gap"]
    assert doc["pairs"][0]["retrieval"] == result.to_dict()["pairs"][0]["retrieval"]
    captions = np.repeat(images[:50], 3, axis=0) + 0.5 * rng.standard_normal((150, 16))
    paired = embgeom.analyze_modalities({"image": images[:50], "caption": captions},
                                        pair_map=np.repeat(np.arange(50), 3), shifts=[])
    assert paired.retrieval("image", "caption")["caption_to_image"]["queries"] == 150
    with pytest.raises(embgeom.EmbgeomError, match="differ in rows"):
        embgeom.analyze_modalities({"image": images[:50], "caption": captions})
    # Another width: analysed on its own, not measured with the others, said so.
    mixed = embgeom.analyze_modalities({"image": images, "text": texts,
                                        "audio": rng.standard_normal((200, 5))}, shifts=[])
    assert mixed.analysis("audio")["dim"] == 5
    assert mixed.gap_matrix[0][2] is None and mixed.gap_matrix[2][2] == 0.0
    assert len(mixed.notes) == 2 and "16 and 5 dimensions" in mixed.notes[0]
    assert mixed.gap("image", "text")["distance"] == pytest.approx(gap["distance"], rel=1e-12)
    with pytest.raises(KeyError, match="16 and 5 dimensions"):
        mixed.retrieval("text", "audio")


def test_modalities_report_and_track_of_the_two_tower_run(tmp_path):
    """The modalities report from arrays (its figures and each modality's own report), and
    ``track`` of the bundled two-tower run with its two keys: the same numbers as the CLI."""
    rng = np.random.default_rng(5)
    images = rng.standard_normal((120, 8))
    texts = images + 0.5 * rng.standard_normal((120, 8)) + 2.0
    result = embgeom.analyze_modalities({"image": images, "text": texts}, shifts=[1.0],
                                        report=tmp_path / "pair")
    assert (tmp_path / "pair" / "figures" / "p1-joint-pca.svg").is_file()
    assert (tmp_path / "pair" / "image" / "index.html").is_file()
    written = json.loads((tmp_path / "pair" / "modalities.json").read_text())
    assert written["pairs"][0]["gap"] == result.to_dict()["pairs"][0]["gap"]
    with pytest.raises(embgeom.EmbgeomError):
        embgeom.analyze_modalities({"text": texts, "image": images}, report=tmp_path / "pair")
    run = ROOT / "data" / "fashion-clip"
    outcome = embgeom.track(str(run), out=tmp_path / "clip", modalities=["top", "bottom"])
    assert outcome["checkpoints"] == 13
    table = (tmp_path / "clip" / "metrics.csv").read_text().splitlines()
    header = table[0].split(",")
    gap = [float(line.split(",")[header.index("modality_gap")]) for line in table[1:]]
    assert gap[0] > 1.5 > 0.5 > gap[-1]
    with pytest.raises(embgeom.EmbgeomError, match="two keys"):
        embgeom.track(str(run), out=tmp_path / "three", modalities=["top", "bottom", "top"])
    compared = embgeom.compare([run / "ckpt_epoch_0000.safetensors",
                                run / "ckpt_epoch_0012.safetensors"],
                               out=tmp_path / "cmp", modalities=["top", "bottom"])
    pairs = compared["document"]["modalities"]["pairs"]
    assert pairs[0]["gap"]["distance"] == pytest.approx(gap[0], rel=1e-12)
    assert pairs[1]["gap"]["distance"] == pytest.approx(gap[-1], rel=1e-12)


def test_the_similarity_family_equals_the_reference_formulas(tmp_path):
    """``compare`` of two representations of the same rows: linear and debiased CKA against
    Kornblith et al.'s Gram-space code (``center_gram(unbiased=True)``), Procrustes against
    sim_metric's ``procrustes`` and the angular form against netrep's ``arccos`` of the
    nuclear norm, written out in NumPy."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((150, 12))
    y = np.tanh(x @ rng.standard_normal((12, 7))) + 0.3 * rng.standard_normal((150, 7))

    def center_gram(gram, unbiased):
        gram = gram.copy()
        n = gram.shape[0]
        if unbiased:
            np.fill_diagonal(gram, 0)
            means = gram.sum(0) / (n - 2)
            means -= means.sum() / (2 * (n - 1))
            gram -= means[:, None]
            gram -= means[None, :]
            np.fill_diagonal(gram, 0)
        else:
            means = gram.mean(0)
            means -= means.mean() / 2
            gram -= means[:, None]
            gram -= means[None, :]
        return gram

    def cka(a, b, debiased):
        ga, gb = center_gram(a @ a.T, debiased), center_gram(b @ b.T, debiased)
        return ga.ravel() @ gb.ravel() / (np.linalg.norm(ga) * np.linalg.norm(gb))

    def unit(a):
        a = a - a.mean(0)
        return (a / np.linalg.norm(a)).T          # sim_metric's (features, examples)

    nuclear = np.linalg.norm(unit(x) @ unit(y).T, ord="nuc")
    compared = embgeom.compare({"x": x, "y": y}, out=tmp_path / "cmp")["document"]
    similar = compared["similarity"]
    assert compared["cka"]["matrix"][0][1] == pytest.approx(cka(x, y, False), rel=1e-10)
    assert similar["debiased_cka"][0][1] == pytest.approx(cka(x, y, True), rel=1e-10)
    assert similar["procrustes"][0][1] == pytest.approx(2 - 2 * nuclear, rel=1e-10)
    assert similar["procrustes_angular"][1][0] == pytest.approx(np.arccos(nuclear), rel=1e-10)
    assert similar["procrustes"][0][0] == 0 and similar["debiased_cka"][1][1] == 1
    # The CCA family as sim_metric's cca_decomp, mean_cca_corr and pwcca_dist compute it
    # (A, B as features x examples, centred per feature).
    a, b = (x - x.mean(0)).T, (y - y.mean(0)).T

    def inverse_sqrt(m):
        values, vectors = np.linalg.eigh(m)
        values = (values + np.abs(values)) / 2
        return vectors @ np.diag([1 / np.sqrt(v) if v > 0 else 0 for v in values]) @ vectors.T

    u, rho, _ = np.linalg.svd(inverse_sqrt(a @ a.T) @ (a @ b.T) @ inverse_sqrt(b @ b.T))
    transformed_a = (u.T @ inverse_sqrt(a @ a.T) @ a).T
    weights = np.abs(transformed_a.T @ a.T).sum(1)
    weights /= weights.sum()
    assert similar["mean_cca"][0][1] == pytest.approx(rho.sum() / len(rho), rel=1e-10)
    assert similar["pwcca"][0][1] == pytest.approx(weights[:len(rho)] @ rho, rel=1e-10)
    # SVCCA (Raghu et al.): the 99%-variance SVD directions of each, then CCA by QR.
    def top_directions(m):
        left, singular, _ = np.linalg.svd(m, full_matrices=False)
        share = np.cumsum(singular ** 2) / np.sum(singular ** 2)
        keep = int(np.searchsorted(share, 0.99) + 1)
        return (left[:, :keep].T @ m).T
    qa, qb = np.linalg.qr(top_directions(a))[0], np.linalg.qr(top_directions(b))[0]
    rho_sv = np.linalg.svd(qa.T @ qb, compute_uv=False)
    assert similar["svcca"][0][1] == pytest.approx(rho_sv.mean(), rel=1e-10)
    # RBF CKA as Kornblith et al.'s notebook (gram_rbf with threshold 1, the biased cka).
    def gram_rbf(m, threshold=1.0):
        dots = m @ m.T
        norms = np.diag(dots)
        sq = -2 * dots + norms[:, None] + norms[None, :]
        return np.exp(-sq / (2 * threshold ** 2 * np.median(sq)))
    rbf_x, rbf_y = center_gram(gram_rbf(x), False), center_gram(gram_rbf(y), False)
    want = rbf_x.ravel() @ rbf_y.ravel() / (np.linalg.norm(rbf_x) * np.linalg.norm(rbf_y))
    assert similar["rbf_cka"][0][1] == pytest.approx(want, rel=1e-10)
    # Mutual kNN and CKNNA as platonic-rep's metrics.py (L2-normalised features, topk 10,
    # unbiased HSIC; without its +1e-6 in CKNNA's denominator).
    knn, ckn = platonic_alignment(x, y, 10)
    assert similar["mutual_knn"][0][1] == pytest.approx(knn, rel=1e-12)
    assert similar["cknna"][1][0] == pytest.approx(ckn, rel=1e-10)
    assert [m["key"] for m in similar["measures"]] == [
        "cka", "debiased_cka", "procrustes", "procrustes_angular", "mean_cca", "svcca",
        "pwcca", "rbf_cka", "mutual_knn", "cknna"]


def platonic_alignment(x, y, topk):
    """platonic-rep's ``mutual_knn`` and ``cknna`` (unbiased), in NumPy, on L2-normalised rows,
    with its ``+ 1e-6`` left out of CKNNA's denominator."""
    fa = x / np.linalg.norm(x, axis=1, keepdims=True)
    fb = y / np.linalg.norm(y, axis=1, keepdims=True)
    n = len(fa)

    def mask(gram):
        g = gram.copy()
        np.fill_diagonal(g, -np.inf)
        top = np.argsort(-g, axis=1)[:, :topk]
        out = np.zeros((n, n))
        out[np.arange(n)[:, None], top] = 1.0
        return out

    def hsic_unbiased(k, l):
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        return ((k * l.T).sum() + k.sum() * l.sum() / ((n - 1) * (n - 2))
                - 2 * (k @ l).sum() / (n - 2)) / (n * (n - 3))

    K, L = fa @ fa.T, fb @ fb.T
    mask_k, mask_l = mask(K), mask(L)
    mutual = ((mask_k * mask_l).sum(1) / topk).mean()

    def sim(a, b):
        m = mask(a) * mask(b)
        return hsic_unbiased(m * a, m * b)

    return mutual, sim(K, L) / np.sqrt(sim(K, K) * sim(L, L))


def test_similarity_of_two_arrays_with_huh_et_al_preprocessing():
    """``embgeom.similarity`` equals compare's readings; the platonic option clamps at the mean
    per-row 0.95 quantile of |x| (torch.quantile's linear interpolation) before the kNN
    measures; bad inputs are refused with what is wrong."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((120, 9)) * np.array([1, 1, 1, 1, 1, 1, 1, 1, 20.0])
    y = x[:, :6] @ rng.standard_normal((6, 6)) + 0.5 * rng.standard_normal((120, 6))
    plain = embgeom.similarity(x, y)
    knn, ckn = platonic_alignment(x, y, 10)
    assert plain["mutual_knn"] == pytest.approx(knn, rel=1e-12)
    assert plain["cknna"] == pytest.approx(ckn, rel=1e-10)

    def clamp(m):
        q = np.quantile(np.abs(m), 0.95, axis=1).mean()
        return np.clip(m, -q, q)
    clamped = embgeom.similarity(x, y, platonic=True, k=5)
    knn, ckn = platonic_alignment(clamp(x), clamp(y), 5)
    assert clamped["mutual_knn"] == pytest.approx(knn, rel=1e-12)
    assert clamped["cknna"] == pytest.approx(ckn, rel=1e-10)
    assert clamped["cka"] == plain["cka"]      # the clamp is the kNN measures' alone
    same = embgeom.similarity(x, x.astype(np.float32) @ np.eye(9, dtype=np.float32))
    assert all(same[k] == pytest.approx(1.0, abs=1e-6)
               for k in ("cka", "debiased_cka", "mean_cca", "rbf_cka", "mutual_knn", "cknna"))
    assert embgeom.similarity(x, y, rbf_rows=0, neighbour_rows=0)["rbf_cka"] is None
    with pytest.raises(embgeom.EmbgeomError, match="input 2 has 50 rows"):
        embgeom.similarity(x, y[:50])
    bad = y.copy()
    bad[7, 2] = np.nan
    with pytest.raises(embgeom.EmbgeomError, match="row 7, column 2"):
        embgeom.similarity(x, bad)
    with pytest.raises(embgeom.EmbgeomError, match="k >= 2"):
        embgeom.similarity(x, y, k=1)
    with pytest.raises(embgeom.EmbgeomError, match="constant representation"):
        embgeom.similarity(np.ones_like(x), y)
    with pytest.raises(embgeom.EmbgeomError, match="overflow"):
        embgeom.similarity(x * 1e200, y)
    # Any scale whose squares stay in f64: the values of the unscaled rows.
    huge = embgeom.similarity(x * 1e100, y * 1e-100, neighbour_rows=0)
    for key in ("cka", "procrustes", "mean_cca", "pwcca", "rbf_cka"):
        assert huge[key] == pytest.approx(plain[key], rel=1e-9), key
    assert huge["debiased_cka"] is None and any("fourth-order" in n for n in huge["notes"])
    narrow = embgeom.similarity(x[:5], y[:5])
    assert narrow["mean_cca"] is None and any("more rows" in n for n in narrow["notes"])


def test_per_point_table_equals_brute_force_and_opens_as_embedding_atlas_reads_it(tmp_path):
    """``analyze(per_point=True).per_point()``: every column against NumPy on all rows (cosine
    neighbours, k-occurrence, class means, nearest same and other class, the vote, the LID);
    the Parquet file holds embedding-atlas's documented columns (``projection_x``,
    ``projection_y`` and ``neighbors`` as ``{ids, distances}`` with zero-based ids), read back
    with polars, with pandas, and with embedding-atlas's own loader and neighbour-graph code."""
    import polars as pl
    import pandas as pd

    rng = np.random.default_rng(11)
    y = np.repeat(np.arange(4), 30)
    x = rng.standard_normal((120, 6)) + 1.5 * np.eye(6)[y]
    result = embgeom.analyze(x, labels=y, per_point=True, knn_k=5)
    path = tmp_path / "atlas.parquet"
    table = result.per_point(path)
    assert isinstance(table, pl.DataFrame) and table.height == 120
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    occurrence = np.bincount(order[:, :10].ravel(), minlength=120)
    assert table["k_occurrence"].to_list() == occurrence.tolist()
    means = np.stack([u[y == c].mean(0) for c in range(4)])
    assert np.allclose(table["class_mean_distance"], np.linalg.norm(u - means[y], axis=1),
                       rtol=1e-12)
    same = [s[i, next(j for j in order[i] if y[j] == y[i])] for i in range(120)]
    other = [s[i, next(j for j in order[i] if y[j] != y[i])] for i in range(120)]
    assert np.allclose(table["nearest_same_class"], same, rtol=1e-12)
    assert np.allclose(table["nearest_other_class"], other, rtol=1e-12)
    top = np.take_along_axis(s, order[:, :5], axis=1)
    weights = np.exp((top - top[:, :1]) / 0.07)
    votes = np.stack([(weights * (y[order[:, :5]] == c)).sum(1) for c in range(4)], axis=1)
    assert table["knn_prediction"].to_list() == [str(c) for c in votes.argmax(1)]
    assert table["knn_disagrees"].to_list() == (votes.argmax(1) != y).tolist()
    r = np.sqrt(np.maximum(2 - 2 * np.take_along_axis(s, order[:, :20], axis=1), 0))
    lid = 19 / np.log(r[:, -1:] / r).sum(1)
    assert np.allclose(table["lid"], lid, rtol=1e-9)
    # The file as embedding-atlas reads it.
    atlas = pd.read_parquet(path)
    for column in ("projection_x", "projection_y", "neighbors"):
        assert column in atlas.columns
    first = atlas["neighbors"][0]
    assert list(first["ids"]) == order[0, :5].tolist()
    assert np.allclose(first["distances"], 1 - s[0, order[0, :5]], rtol=1e-12)
    # embedding-atlas's own loader and its neighbour-graph metrics (in- and out-degree over
    # the neighbors column, as its --neighbors view reads it).
    try:
        from embedding_atlas.graph_metrics import compute_degree_columns
        from embedding_atlas.utils import load_pandas_data
    except ImportError:
        # Under CI a missing dependency is a failure; elsewhere the polars checks remain.
        assert not os.environ.get("CI"), "embedding-atlas is missing (scripts/python.sh --torch)"
    else:
        loaded = load_pandas_data(str(path))
        in_degree, out_degree, _ = compute_degree_columns(loaded, neighbors="neighbors")
        assert out_degree.tolist() == [5] * 120 and in_degree.tolist() == np.bincount(
            order[:, :5].ravel(), minlength=120).tolist()
    back = pl.read_parquet(path)
    assert back.schema["neighbors"] == pl.Struct({"ids": pl.List(pl.Int64),
                                                  "distances": pl.List(pl.Float64)})
    # The projection: the rows on the top two principal axes of all rows (up to sign).
    centred = u - u.mean(0)
    axes = np.linalg.eigh(np.cov(centred.T))[1][:, ::-1][:, :2]
    want = centred @ axes
    for k, column in enumerate(("projection_x", "projection_y")):
        got = table[column].to_numpy()
        assert np.allclose(np.abs(got), np.abs(want[:, k]), atol=1e-9)
    with pytest.raises(embgeom.EmbgeomError, match="per_point=True"):
        embgeom.analyze(x, labels=y).per_point()
    sample = embgeom.analyze(x, labels=y, per_point=50).per_point()
    # A seeded sample keeping each class's share (4 x 12 rows): neighbours are positions in it.
    assert sample.height == 48 and all(max(n["ids"]) < 48 for n in sample["neighbors"])
