# %% [markdown]
# # 05 · Scaling the service: parallel workers and adaptive batching
#
# One TinyViT forward pass takes a few tens of milliseconds on this CPU. With many clients at
# once, what the server does *around* the model decides how many images per second you get
# and how long each client waits. MLServer has two levers, both pure configuration:
#
# * **Parallel workers** (`parallel_workers` in `settings.json`): several worker processes,
#   each with its own copy of the model, take requests from the main process.
# * **Adaptive batching** (`max_batch_size` and `max_batch_time` in `model-settings.json`):
#   the main process holds requests for a short while and hands them to the model as one batch.
#
# In this notebook you switch both on and off, measure the effect with a load generator, and
# pick a configuration for a latency budget from your own measurements.

# %%
from labkit import show

random_weights = show.weights_banner()

# %% [markdown]
# ## Parallel inference
#
# With `parallel_workers: N`, MLServer starts N worker processes (with `spawn`: each is a fresh
# Python that imports torch and **loads the model**, so memory and start-up time grow with N).
# The main process receives HTTP/gRPC requests and passes them to a worker through a queue:
# the request and the response are pickled across processes, a small cost (IPC) per request.
# `parallel_workers: 0` runs the model in the main process itself.
#
# Workers share the machine's cores. PyTorch uses several threads per process by default, so
# N workers × all cores each would fight for the CPU. `serve-model.py` gives each worker its
# share: `cores // workers` threads. The server log says what each worker chose:

# %%
from labkit.panel import ScalingLab

lab = ScalingLab("tinyvit")
first = lab.run(parallel_workers=2, concurrency=4)
print("\n".join(line for line in lab.server.log.splitlines() if "torch thread" in line))

# %% [markdown]
# `lab.run(...)` restarted the server with two workers, warmed it up, kept 4 requests in
# flight for a few seconds (`labkit.loadgen.run_load`), and recorded the outcome:

# %%
lab.table()

# %% [markdown]
# ## Adaptive batching
#
# With batching on, the main process collects requests until it has `max_batch_size` of them
# or `max_batch_time` seconds have passed since the first one, then **concatenates them along
# axis 0** and calls `predict()` once. The answer is split back along axis 0: every client gets
# as many rows as it sent images. This is why the service insists on a leading batch axis
# (`[N, H, W, 3]`): MLServer checks nothing when it merges, so arrays of different image sizes
# cannot share a batch (the service answers 400 and asks for encoded images, which can).
#
# Two costs come with it: a request may wait up to `max_batch_time` for company, and a batch
# only helps if the model runs a batch faster than its images one by one. The service counts
# the images of every `predict()` call in a custom metric, `tinyvit_batch_size`, so the
# measured **average batch size** comes from the server itself (custom metrics need
# `parallel_workers > 0`, MLServer issue #1151):

# %%
batched = lab.run(parallel_workers=1, max_batch_size=8, max_batch_time=0.02, concurrency=8)
print(f"average batch: {batched['avg_batch']:.1f} images per predict() call")

# %% [markdown]
# ## Try it yourself
#
# The panel runs the same function: choose settings, press **Run**, and a row is added to the
# table and the plot. Payload `numpy` is the course text's pixels in JSON, `jpeg` the compact
# encoded image (notebook 02).

# %%
lab.panel()

# %% [markdown]
# ## A small sweep
#
# Now measure a grid side by side: workers × batching at a fixed concurrency of 8 clients (in
# full mode also with a single client). Each configuration restarts the server, so this takes
# a minute or two. Throughput and latency differ from machine to machine; compare rows with
# each other, not with numbers from elsewhere.

# %%
from labkit.loadgen import quick_mode

concurrencies = [8] if quick_mode() else [1, 8]
grid = [
    {"parallel_workers": workers, "max_batch_size": size, "max_batch_time": wait, "concurrency": concurrency}
    for workers in (1, 2)
    for size, wait in ((1, 0.0), (8, 0.01))
    for concurrency in concurrencies
]
results = lab.sweep(grid)
results[["configuration", "concurrency", "errors", "throughput_rps", "p50_ms", "p95_ms", "avg_batch"]].round(1)

# %%
# NBVAL_CHECK_OUTPUT
print("configurations measured:", sorted(set(results.configuration)))
print("failed requests:", int(results.errors.sum()))

# %%
figure = lab.plot(results)

# %% [markdown]
# What to look for: do two workers serve more requests per second than one on this machine's
# cores? Does batching raise throughput, and what does it do to p95 latency? Is the average
# batch close to `max_batch_size`, or do requests not arrive fast enough to fill it?
#
# ## Exercise: pick a configuration for a latency budget
#
# Your service must answer 95 % of requests within `budget_ms` (the budget is set from this
# machine's measurements so that some configurations meet it and some do not). Write
# `pick_configuration(results, budget_ms)`: it returns the row label of `results` that **meets
# the budget with the highest throughput**, or `None` if no row meets it.

# %%
import numpy as np

budget_ms = float(np.ceil(results.p95_ms.median() / 50) * 50)
print(f"budget: p95 <= {budget_ms:.0f} ms")

# %% solution id=scaling-choice
def pick_configuration(results, budget_ms):
    ### BEGIN SOLUTION
    within_budget = results[results.p95_ms <= budget_ms]
    if within_budget.empty:
        return None
    return within_budget.throughput_rps.idxmax()
    ### END SOLUTION


choice = pick_configuration(results, budget_ms)
results.loc[choice, ["configuration", "concurrency", "throughput_rps", "p95_ms"]]

# %% tests id=scaling-choice-check points=2
from labkit import checks

checks.scaling_choice(results, choice, budget_ms)

# %% tests id=scaling-function-check points=2
# When your notebook is graded, this cell also tries pick_configuration on other tables and budgets.
### BEGIN HIDDEN TESTS
checks.pick_configuration_function(pick_configuration)
### END HIDDEN TESTS

# %% [markdown]
# <details><summary>Hint</summary>
#
# `results[results.p95_ms <= budget_ms]` keeps the rows within budget; `.throughput_rps.idxmax()`
# gives the label of the fastest of them; `.empty` tells whether any row is left.
# </details>
#
# In one or two sentences (a markdown cell below), justify the choice from the table: what does
# it gain over the other rows within budget, and what would you change with twice as many
# cores? For the full picture across serving designs, see the benchmark in the README
# (`make bench`).
#
# ## Stop the server

# %%
# NBVAL_CHECK_OUTPUT
lab.stop()
print("running:", lab.server.running)
