"""Where a lab server listens: its three ports on 127.0.0.1, and the addresses built from them."""

from __future__ import annotations


class Addresses:
    """The addresses of a server with ``ports`` (``http_port``, ``grpc_port``, ``metrics_port``)
    and model ``name``; :class:`labkit.serving.server.ModelServer` is one."""

    ports: dict[str, int | None]
    name: str

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http_port']}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.ports['grpc_port']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics_port']}/metrics"

    @property
    def model_url(self) -> str:
        return f"{self.http_url}/v2/models/{self.name}"

    @property
    def infer_url(self) -> str:
        """Where the model's Open Inference Protocol requests go (POST)."""
        return f"{self.model_url}/infer"

    @property
    def docs_url(self) -> str:
        return f"{self.http_url}/v2/docs"
