# %% [markdown]
# # embgeom in a notebook
#
# The geometry of the bundled embeddings, from in-memory arrays: the metric table, the
# report's figures inline, and the report, a comparison and a training trajectory written
# from arrays. Open this file as a notebook (Jupyter with jupytext, VS Code, PyCharm: cells
# are separated by `# %%`) from inside the repository, or run it as a script.

# %%
import json
import struct
import tempfile
from pathlib import Path

import numpy as np

import embgeom

# The repository's data folder: above this file (as a script), or above the working
# directory (in a notebook).
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
DATA = next(p / "data" for p in [HERE, *HERE.parents] if (p / "data" / "digits.npz").exists())
# Reports go to a fresh temporary folder here; give your own `out=` to keep them.
OUT = Path(tempfile.mkdtemp(prefix="embgeom-notebook-"))


def read_safetensors(path: Path) -> dict:
    """The arrays of a .safetensors file (what `safetensors.numpy.load_file` returns)."""
    dtypes = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64}
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    body = raw[8 + size:]
    return {name: np.frombuffer(body[start:end], dtype=dtypes[entry["dtype"]])
            .reshape(entry["shape"])
            for name, entry in header.items() if name != "__metadata__"
            for start, end in [entry["data_offsets"]]}


# %% [markdown]
# ## One analysis: the table
#
# 1,797 handwritten digits (64 pixels each) with their labels and two augmented views.
# `figures=True` keeps the numbers behind the report's figures with the result.

# %%
digits = np.load(DATA / "digits.npz")
x, y = digits["embeddings"], digits["labels"]
views = [digits["views"][:, 0], digits["views"][:, 1]]
result = embgeom.analyze(x, labels=y, views=views, figures=True)
result  # in Jupyter: the metric table (metric, value, ideal, reading) and the warnings

# %%
# Every catalogued metric is a typed attribute (None where it does not apply).
print(f"NC1 {result.nc1:.3f}, uniformity {result.uniformity:.3f}, "
      f"RankMe {result.rankme:.1f} of D = {result.dim}")
table_html = result._repr_html_()  # what Jupyter shows for `result`

# %% [markdown]
# ## The report's figures, inline

# %%
figures = result.figures()
figures  # in Jupyter: every figure with its title and caption

# %%
spectrum = figures["spectrum"]
figure_svg = spectrum._repr_svg_()  # what Jupyter shows for `spectrum`
print(spectrum.title, "-", spectrum.caption)
spectrum.save(OUT / "spectrum.png")  # or .svg
spectrum  # in Jupyter: the figure alone

# %% [markdown]
# ## A report, a comparison and a trajectory, from arrays
#
# The SupCon and SimCLR runs on Fashion-MNIST: twelve checkpoints each of the same 2,000
# test images (labels and two views stored with the embeddings).

# %%
print(embgeom.report(x, labels=y, out=OUT / "digits"))

runs = {loss: [read_safetensors(DATA / f"fashion-{loss}" / f"ckpt_epoch_{epoch:04d}.safetensors")
               for epoch in range(1, 13)]
        for loss in ("supcon", "simclr")}
labels = runs["supcon"][0]["labels"]
compared = embgeom.compare({loss: checkpoints[-1]["embeddings"]
                            for loss, checkpoints in runs.items()},
                           labels=labels, out=OUT / "supcon-vs-simclr")
print(compared["table"])

# %%
steps = [entry["step"] for entry in
         json.loads((DATA / "fashion-supcon" / "manifest.json").read_text())["checkpoints"]]
tracked = embgeom.track({step: checkpoint["embeddings"]
                         for step, checkpoint in zip(steps, runs["supcon"])},
                        labels=labels, out=OUT / "supcon", checks=["nc1 increased"])
print(tracked["index"], tracked["checks"])

# %% [markdown]
# ## The same result from a stream of batches
#
# An `Accumulator` sums batches in O(D^2) memory and finalises into the same `Analysis`
# (without uniformity, kNN accuracy and figures, which need the rows).

# %%
state = embgeom.Accumulator()
for batch in range(0, len(x), 256):
    state.update(x[batch:batch + 256], y[batch:batch + 256])
streamed = state.finalize()
print(f"NC1 from batches {streamed.nc1:.6f}, from the array {result.nc1:.6f}")
streamed
