"""Hostile arrays from Python: random dtypes, shapes, strides, byte orders, memory layouts,
label kinds and sizes given to ``analyze`` (with its per-point table), ``analyze_modalities``
(with pair maps), ``similarity``, ``Accumulator`` and the single metrics. Each call must end
in a result or an ``EmbgeomError``: never another exception, a panic caught at the boundary
(an "internal error"), a NaN passed off as a value, or a crash of the interpreter. The cases
run in a child interpreter, so that a crash (a signal, an abort) fails this test with its exit
status instead of ending pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CASES = int(os.environ.get("EMBGEOM_PY_FUZZ_CASES", "1500"))

CHILD = textwrap.dedent(
    r'''
    import faulthandler, math, sys
    import numpy as np
    import embgeom
    from embgeom import EmbgeomError

    faulthandler.enable()
    rng = np.random.default_rng(int(sys.argv[2]))

    DTYPES = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?", "c8",
              "U3", "S2", "O", "M8[s]", "g"]
    ORDERS = ["<", ">", "="]

    def values(shape):
        kind = rng.integers(11)
        size = int(np.prod(shape)) if len(shape) else 1
        if kind == 0 or kind > 7:
            v = rng.standard_normal(size)
        elif kind == 1:
            v = np.zeros(size)
        elif kind == 2:
            v = rng.standard_normal(size) * 10.0 ** rng.integers(-300, 300)
        elif kind == 3:
            v = rng.standard_normal(size)
            if size:
                v[rng.integers(size)] = [np.nan, np.inf, -np.inf][rng.integers(3)]
        elif kind == 4:
            v = np.resize(np.repeat(rng.standard_normal(max(1, size // 4)), 4), size)
        elif kind == 5:
            v = rng.integers(-3, 3, size).astype(float)
        elif kind == 6:
            v = np.full(size, 1e-310)
        else:
            v = rng.standard_normal(size) * 1e30
        return v.reshape(shape)

    def shape():
        n = int(rng.choice([0, 1, 2, 3, 5, 12, 40, 130]))
        d = int(rng.choice([0, 1, 2, 3, 8, 33]))
        shapes = [(n, d)] * 6 + [(n,), (), (n, 2, d), (d, n)]
        return shapes[rng.integers(len(shapes))]

    def array():
        s = shape()
        v = values(s)
        dtype = DTYPES[rng.integers(len(DTYPES))] if rng.random() < 0.4 else ["f4", "f8"][rng.integers(2)]
        order = ORDERS[rng.integers(3)]
        try:
            with np.errstate(all="ignore"):
                if dtype in ("U3", "S2", "O", "M8[s]", "?"):
                    a = np.asarray(v).astype(dtype)
                else:
                    a = np.asarray(v).astype(np.dtype(order + dtype))
        except (TypeError, ValueError, OverflowError):
            a = np.asarray(v)
        layout = rng.integers(6)
        if layout == 1 and a.ndim == 2:
            a = np.asfortranarray(a)
        elif layout == 2 and a.ndim >= 1:
            a = a[::-1]
        elif layout == 3 and a.ndim == 2:
            a = np.repeat(a, 2, axis=1)[:, ::2]
        elif layout == 4 and a.size and a.dtype.kind in "fiu" and a.dtype.itemsize > 1:
            # Unaligned: the same values one byte into a buffer.
            raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
            raw[1:] = np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=np.uint8)
            a = np.frombuffer(raw.data, dtype=a.dtype, offset=1).reshape(a.shape)
        elif layout == 5:
            a = a.copy()
            a.setflags(write=False)
        return a

    def labels(n):
        kind = rng.integers(9)
        m = n if rng.random() < 0.85 else int(rng.integers(0, 2 * n + 2))
        if kind == 0:
            return rng.integers(0, max(1, int(rng.integers(1, 6))), m)
        if kind == 1:
            return [str(v) for v in rng.integers(0, 3, m)]
        if kind == 2:
            return rng.integers(0, 3, m).astype(float) + (0.5 if rng.random() < 0.3 else 0.0)
        if kind == 3:
            return rng.integers(0, 3, m).astype(np.uint64) + np.uint64(2**63 if rng.random() < 0.5 else 0)
        if kind == 4:
            return rng.integers(0, 2, m).astype(bool)
        if kind == 5:
            return np.array([None, 1, "a"] * (m // 3 + 1), dtype=object)[:m]
        if kind == 6:
            return rng.integers(0, 3, (m, 1))
        if kind == 7:
            return rng.integers(-5, 5, (m, 2))
        return np.arange(m)

    def rows_of(a):
        return a.shape[0] if getattr(a, "ndim", 0) >= 1 else 0

    def call(kind, x):
        n = rows_of(x)
        y = labels(n) if rng.random() < 0.7 else None
        small = {"knn_queries": 50, "max_exact": 2000}
        if kind == 0:
            views = [array(), array()] if rng.random() < 0.2 else None
            return embgeom.analyze(x, labels=y, views=views, normalize=bool(rng.random() < 0.8), **small)
        if kind == 1:
            acc = embgeom.Accumulator()
            acc.update(x, y)
            if rng.random() < 0.5:
                acc.update(array(), labels(n))
            return acc.finalize()
        if kind == 2:
            return embgeom.uniformity(x, t=float(rng.choice([2.0, 0.5, 1e-3, 1e3])))
        if kind == 3:
            return embgeom.alignment(x, array())
        if kind == 4:
            return embgeom.class_alignment(x, labels(n))
        if kind == 5:
            return [embgeom.nc1(x, labels(n)), embgeom.cdnv(x, labels(n)), embgeom.etf_distance(x, labels(n))]
        if kind == 6:
            return [embgeom.rankme(x), embgeom.effective_rank(x)]
        if kind == 7:
            return embgeom.knn_accuracy(x, labels(n), knn_k=int(rng.integers(1, 30)))
        if kind == 8:
            pair_map = pairs(n) if rng.random() < 0.3 else None
            other = partner(x) if pair_map is None else array()
            queries = int(rng.choice([1, 3, 50])) if rng.random() < 0.3 else None
            return embgeom.analyze_modalities(
                {"image": x, "text": other}, pair_map=pair_map, labels=y,
                normalize=bool(rng.random() < 0.8), retrieval_queries=queries,
                shifts=[float(s) for s in rng.choice([0.5, 1.0, -0.5, 2.0, np.nan], 2)],
                temperature=float(rng.choice([0.01, 1.0, 0.0, -1.0])), **small).to_dict()
        if kind == 9:
            return embgeom.similarity(x, partner(x), rbf_rows=int(rng.choice([0, 2, 40])),
                                      neighbour_rows=int(rng.choice([0, 3, 60])),
                                      k=int(rng.choice([0, 1, 2, 5, 200])),
                                      platonic=bool(rng.random() < 0.5))
        table = embgeom.analyze(x, labels=y, per_point=int(rng.choice([1, 7, 10_000])),
                                **small).per_point()
        # polars, pandas or a dict of columns, whichever the environment has.
        return (table.to_dict(as_series=False) if hasattr(table, "to_dicts")
                else table.to_dict("list") if hasattr(table, "to_numpy") else table)

    def partner(x):
        # Another representation of the same rows (so that validation lets most through), or
        # any hostile array.
        if rng.random() < 0.3 or rows_of(x) == 0 or x.dtype.kind not in "fiub":
            return array()
        with np.errstate(all="ignore"):
            base = np.asarray(x, dtype=np.float64)
        if rng.random() < 0.5 and base.ndim == 2:
            return base @ rng.standard_normal((base.shape[1], int(rng.choice([1, 4, 9]))))
        return base + 0.1 * values(base.shape)

    def pairs(n):
        kind = rng.integers(5)
        m = int(rng.integers(0, 2 * n + 3))
        if kind == 0:
            return rng.integers(0, max(1, n), m)
        if kind == 1:
            return rng.integers(-2, n + 2, m)
        if kind == 2:
            return rng.integers(0, max(1, n), m).astype(float) + 0.5
        if kind == 3:
            return [str(v) for v in rng.integers(0, max(1, n), m)]
        return np.arange(m)

    def no_nan(result):
        # A number returned is a number: a metric that is undefined is None or an error.
        if isinstance(result, float):
            assert not math.isnan(result), "NaN returned"
        elif isinstance(result, (list, tuple)):
            for r in result:
                no_nan(r)
        elif isinstance(result, dict):
            for r in result.values():
                no_nan(r)

    results = errors = 0
    for case in range(int(sys.argv[1])):
        kind = int(rng.integers(11))
        x = array()
        try:
            no_nan(call(kind, x))
            results += 1
        except EmbgeomError as error:
            assert "array(" not in str(error) and len(str(error)) < 2000, str(error)[:300]
            # A panic caught at the boundary is a defect, not an answer.
            assert not str(error).startswith("internal error"), str(error)[:300]
            errors += 1
        except BaseException as error:
            print(f"FAIL case {case} (call {kind}, x {getattr(x, 'dtype', None)} "
                  f"{getattr(x, 'shape', None)} strides {getattr(x, 'strides', None)}): "
                  f"{type(error).__name__}: {str(error)[:300]}")
            raise SystemExit(1)
    print(f"{results} results, {errors} errors")
    '''
)


def test_hostile_arrays_end_in_a_result_or_an_embgeom_error():
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(CASES), "20261206"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"exit {done.returncode}:\n{output[-4000:]}"
    results, errors = (int(w) for w in done.stdout.split()[0:4:2])
    assert results > 0 and errors > 0, output
