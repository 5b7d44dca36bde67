"""A prior behind HTTP: ``geoprior serve PRIOR`` (FastAPI on uvicorn; the ``serve`` extra).

- :func:`load_served`: a saved prior (JAX) or an ONNX export (onnxruntime) to serve.
- :func:`create_app`: the FastAPI app (endpoints and :class:`Limits` in
  :mod:`geoprior.serve.app`).
- :func:`serve`: run it (blocking); :func:`running`: run it in a thread for as long as a
  ``with`` block lasts (tests, notebooks, benchmarks).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from ..errors import MissingDependencyError

try:
    import uvicorn
    from fastapi import FastAPI  # noqa: F401
except ModuleNotFoundError as e:  # pragma: no cover - the extra is missing
    raise MissingDependencyError(
        f"serving a prior needs {e.name!r}: pip install 'geoprior[serve]'"
    ) from e

from .app import Limits, create_app
from .backend import Answer, Served, load_served

__all__ = ["Answer", "Limits", "Served", "create_app", "load_served", "running", "serve"]


def serve(app, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", *, log_level: str = "warning",
            timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` from a thread on a free port of ``host`` while the block runs; yields
    its base URL (``http://127.0.0.1:PORT``) once the server accepts connections.

    Example:
        >>> with running(create_app(load_served("birds.onnx"))) as url:  # doctest: +SKIP
        ...     httpx.get(f"{url}/healthz").json()
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
