"""``geoprior serve``: a prior behind HTTP (FastAPI + uvicorn, the ``serve`` extra)."""

from __future__ import annotations

import click

from .options import Command, prior_argument


@click.command("serve", cls=Command)
@prior_argument
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX exports: onnxruntime threads per call (default: every core).")
@click.option("--max-points", type=click.IntRange(min=1), default=None,
              help="Points per POST /v1/scores (default 1024).")
@click.option("--max-body", "max_body", type=click.IntRange(min=1), default=None,
              help="Bytes per request body (default 1 MiB).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
def serve(prior, host, port, threads, max_points, max_body, log_level):
    """Serve PRIOR (a saved prior folder, or an .onnx export) over HTTP.

    \b
    GET  /v1/predict?lat=&lon=&date=&k=   the k most likely species, both scores
    POST /v1/scores                       many points, optional species list
    GET  /v1/species                      the species and what the prior takes
    GET  /v1/range/{species}.geojson?month=&res=   in-range H3 cells
    GET  /healthz                         liveness
    OpenAPI docs at /docs."""
    from ..serve import Limits, create_app, load_served
    from ..serve import serve as run

    options = {}
    if max_points is not None:
        options["max_points"] = max_points
    if max_body is not None:
        options["max_body_bytes"] = max_body
    served = load_served(prior, threads=threads)
    click.echo(f"serving {len(served.species)} species ({served.backend}) from {prior} on "
               f"http://{host}:{port} (docs: /docs)", err=True)
    run(create_app(served, Limits(**options)), host, port, log_level=log_level)
