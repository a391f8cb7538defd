"""Try server configurations and measure them: as function calls and as a panel.

``measure(server, concurrency=8)`` measures a running server as it is.
``ScalingLab.run(parallel_workers=2, max_batch_size=8, max_batch_time=0.01,
concurrency=8)`` applies those settings to the TinyViT server (if they changed:
a new process for another worker count, a reload of the model for new batching
settings), warms it up, runs a closed-loop load (``labkit.measure.loadgen``), reads the
average batch size off the server's metrics, and appends one row to
``ScalingLab.results``. ``ScalingLab.panel()`` puts the same call behind
ipywidgets controls with a results table and a live plot.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

import pandas as pd

from labkit.contract import BATCH_SIZE_METRIC
from labkit.measure import metrics
from labkit.config import quick_mode
from labkit.measure.loadgen import payload_body, run_load
from labkit.measure.machine import BUSY_SHARE, OtherLoad
from labkit.paths import PathLike
from labkit.serving.server import ModelServer

if TYPE_CHECKING:
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

SETTINGS = ("parallel_workers", "max_batch_size", "max_batch_time")


def default_duration() -> float:
    """Seconds a measurement keeps its load: 15, or 2 in quick mode (the lab's tests and
    grading run the same code paths, and their numbers are not read)."""
    return 2 if quick_mode() else 15


class ScalingLab:
    """Notebook 05's scaling lab: one server of ``model_dir`` (``weights`` and ``server_options``
    as :class:`~labkit.serving.server.ModelServer` takes them), measured under load for
    ``duration`` seconds per configuration (the notebook's default when None).

    ``run()`` measures one configuration of workers, batching, callers and payload and adds its
    row to ``results``; ``sweep()`` runs a grid of them; ``table()`` and ``plot()`` show the
    rows; ``panel()`` is the same with widgets; ``stop()`` stops the server. A configuration the
    server cannot start with raises :class:`~labkit.serving.server.ServerStartError`.
    """

    def __init__(self, model_dir: PathLike = "tinyvit", weights: PathLike | None = None,
                 duration: float | None = None, **server_options):
        self.server = ModelServer(model_dir, weights=weights, **server_options)
        self.duration = duration or default_duration()
        self.results = pd.DataFrame()
        self._settings: dict | None = None
        self._bodies: dict[str, bytes] = {}

    def run(self, parallel_workers: int = 1, max_batch_size: int = 1, max_batch_time: float = 0.0,
            concurrency: int = 4, payload: str = "jpeg") -> dict:
        """Measure one configuration; return its row (also appended to ``results``)."""
        settings = {"parallel_workers": parallel_workers, "max_batch_size": max_batch_size,
                    "max_batch_time": max_batch_time}
        if not self.server.running or parallel_workers != (self._settings or {}).get("parallel_workers"):
            self.server.restart(**settings)
        elif settings != self._settings:
            # Batching is a model setting: MLServer loads the model again in seconds.
            self.server.reload(max_batch_size=max_batch_size, max_batch_time=max_batch_time)
        self._settings = settings
        row = {"configuration": describe(settings), **settings,
               **measure(self.server, concurrency, self.duration, payload, body=self._body(payload))}
        self.results = pd.concat([self.results, pd.DataFrame([row])], ignore_index=True)
        return row

    def sweep(self, grid: list) -> pd.DataFrame:
        """Run every configuration (a list of ``run`` keyword dicts); return their rows."""
        from tqdm.auto import tqdm

        rows = []
        # k of n: a sweep takes minutes, and a new worker count restarts the server.
        for configuration in tqdm(grid, desc="configurations", unit="config"):
            rows.append(self.run(**configuration))
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """The results so far, rounded for reading."""
        columns = ["configuration", "concurrency", "payload", "requests", "errors", "throughput_rps",
                   "p50_ms", "p95_ms", "avg_batch", "others_cpu_share"]
        if not len(self.results):
            return self.results
        table = self.results[[column for column in columns if column in self.results]].round(1)
        if "others_cpu_share" in table:  # how busy the machine was for each row, as a percentage
            table["others_cpu_share"] = (100 * self.results["others_cpu_share"]).round(0)
            table = table.rename(columns={"others_cpu_share": "others' CPU %"})
        return table

    def plot(self, results: pd.DataFrame | None = None) -> plt.Figure:
        """Throughput and p95 latency per row of the results (bar charts): :func:`plot_rows`."""
        results = self.results if results is None else results
        return plot_rows(results)

    def panel(self) -> widgets.VBox:
        """ipywidgets controls: choose settings, press Run, see the table and plot grow."""
        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        cores = len(os.sched_getaffinity(0))
        # Start from the last run (else run()'s defaults): Run then measures the running server
        # again, and only the settings the student moves restart or reload it.
        last = self.results.iloc[-1] if len(self.results) else {}
        start = {name: last.get(name, parameter.default)
                 for name, parameter in inspect.signature(self.run).parameters.items()}
        # Labels as wide as their text: the default width cuts "batch time (s)" to "batch tim...".
        label = {"style": {"description_width": "initial"}}
        controls = {
            "parallel_workers": widgets.IntSlider(start["parallel_workers"], min=0, max=cores, description="workers",
                                                  **label),
            "max_batch_size": widgets.IntSlider(start["max_batch_size"], min=1, max=32, description="max batch",
                                                **label),
            "max_batch_time": widgets.FloatSlider(start["max_batch_time"], min=0.0, max=0.1, step=0.005,
                                                  readout_format=".3f", description="batch time (s)", **label),
            "concurrency": widgets.IntSlider(start["concurrency"], min=1, max=32, description="concurrency", **label),
            "payload": widgets.Dropdown(options=["jpeg", "numpy"], value=start["payload"], description="payload",
                                        **label),
        }
        button = widgets.Button(description="Run", button_style="primary", icon="play")
        status = widgets.Label("Choose settings and press Run.")
        table, chart = widgets.Output(), widgets.Output()

        def on_click(_: widgets.Button) -> None:
            button.disabled = True
            status.value = "applying the settings and measuring..."
            try:
                row = self.run(**{name: control.value for name, control in controls.items()})
                # hog40: the panel's rows said nothing of the machine's load, which run() records
                share = row["others_cpu_share"]
                status.value = (f"{row['configuration']}: {row['throughput_rps']:.1f} req/s, "
                                f"p95 {row['p95_ms']:.0f} ms, {row['errors']} errors; other processes took "
                                f"{share:.0%} of the CPU meanwhile"
                                + (" (a busy machine: this row's numbers may not compare with the others')"
                                   if share > BUSY_SHARE else ""))
            except Exception as error:  # show it in the panel instead of losing it in a log
                status.value = f"failed: {error}"
            finally:
                button.disabled = False
            with table:
                table.clear_output(wait=True)
                display(self.table())
            with chart:
                chart.clear_output(wait=True)
                figure = self.plot()
                display(figure)
                plt.close(figure)

        button.on_click(on_click)
        return widgets.VBox([widgets.HBox([widgets.VBox(list(controls.values())), button]), status, table, chart])

    def stop(self) -> None:
        self.server.stop()

    def _body(self, payload: str) -> bytes:
        if payload not in self._bodies:
            self._bodies[payload] = payload_body(payload)
        return self._bodies[payload]


def measure(server: ModelServer, concurrency: int = 8, duration: float | None = None, payload: str = "jpeg",
            transport: str = "rest", body: bytes | None = None) -> dict:
    """Measure a running server under load, after a warm-up.

    Args:
        server: a running :class:`ModelServer`.
        concurrency: requests kept in flight at once (callers).
        duration: seconds of load; None for 15 (2 in quick mode).
        payload: ``"jpeg"`` (encoded image) or ``"numpy"`` (the course text's pixels in JSON).
        transport: ``"rest"`` or ``"grpc"``.
        body: a prepared request body, instead of one made from ``payload``.

    Returns:
        The load's summary (``requests``, ``errors``, ``throughput_rps``, ``p50_ms``,
        ``p95_ms``, ...) with ``transport``, ``avg_batch``, the average batch size the
        server itself counted (``tinyvit_batch_size``; NaN where the model does not log it),
        and ``others_cpu_share``, the share of the machine's CPU that processes other than
        this kernel and its servers took meanwhile (:mod:`labkit.measure.machine`).

    Raises:
        ValueError: an unknown ``transport``.
    """
    duration = duration or default_duration()
    body = payload_body(payload) if body is None else body
    target: dict[str, Any]  # run_load's url, and grpc_model for gRPC
    if transport == "grpc":
        target = {"url": server.grpc_address, "grpc_model": server.name}
    elif transport == "rest":
        target = {"url": server.infer_url}
    else:
        raise ValueError(f"transport is 'rest' or 'grpc', not {transport!r}")
    # Warm-up: first calls pay for lazy initialisation in every worker (a round per caller
    # is enough to reach each worker once in quick mode; two settle the timings).
    warm_up = (1 if quick_mode() else 2) * concurrency
    run_load(concurrency=concurrency, duration=30, max_requests=warm_up, body=body, payload=payload,
             progress=False, **target)
    before = metrics.scrape(server.metrics_url)
    with OtherLoad() as load:
        result = run_load(concurrency=concurrency, duration=duration, body=body, payload=payload, **target)
    after = metrics.scrape(server.metrics_url)
    return {**result.summary, "transport": transport,
            "avg_batch": metrics.histogram_mean(before, after, BATCH_SIZE_METRIC, server.name),
            "others_cpu_share": round(load.share, 3)}


def plot_rows(results: pd.DataFrame) -> plt.Figure:
    """One bar pair (throughput, p95) per row of ``results``, labelled by its configuration,
    concurrency and payload: bars sit at their row's position, so two rows that differ only
    in payload (or repeat a configuration) get a pair each instead of sharing one."""
    import matplotlib.pyplot as plt

    labels = [f"{row.configuration}\nC={row.concurrency}"
              + (f", {row.payload}" if "payload" in results and isinstance(row.payload, str) else "")
              for row in results.itertuples()]
    positions = list(range(len(labels)))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(labels) + 1.5), sharey=True)
    left.barh(positions, results.throughput_rps, color="#188038")
    left.set_xlabel("throughput (requests/s)")
    right.barh(positions, results.p95_ms, color="#f9ab00")
    right.set_xlabel("p95 latency (ms)")
    left.set_yticks(positions, labels)
    left.invert_yaxis()
    figure.tight_layout()
    return figure


def describe(settings: dict) -> str:
    """A short name for a configuration, e.g. ``workers=2 batch<=8/10ms``."""
    batching = settings["max_batch_size"] > 1 and settings["max_batch_time"] > 0
    milliseconds = settings["max_batch_time"] * 1000
    batch = f"batch<={settings['max_batch_size']}/{milliseconds:g}ms" if batching else "no batching"
    return f"workers={settings['parallel_workers']} {batch}"
