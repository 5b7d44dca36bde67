"""The HTTP API of a prior (FastAPI): predictions, scores of many points, species, range
maps as GeoJSON, health.

Every request is bounded (:class:`Limits`): the body's bytes, the points of one scores
request, the values (points x species) it may return, ``k``, and the cells of a range map.
Places, dates, species and covariates are checked by the library's own validation, so a
bad value is answered ``422`` with the library's message (``{"detail": ..., "error":
"CoordinateError"}``; a value of the wrong type, ``"RequestValidationError"``); an unknown species in a range map's path is ``404``. The species of
a range map's path is looked up in the prior's list, never used to build a path. OpenAPI
docs are at ``/docs`` (and ``/openapi.json``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from .._version import __version__
from ..errors import ConfigError, GeopriorError, UnknownSpeciesError
from ..query import prepare_query, species_indices
from ..validation import check_covariates
from .backend import Served

__all__ = ["Limits", "create_app"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_body_bytes: the largest request body (larger: ``413``).
        max_points: points in one ``POST /v1/scores``.
        max_values: points x species one scores request may return.
        max_k: the largest ``k`` of ``GET /v1/predict``.
        max_range_res: the finest H3 resolution of a range map without ``bbox``.
        max_range_cells: cells in one range map (a finer map needs a smaller ``bbox``).
        range_cache: range maps kept in memory (they are slow to make, often asked again).
    """

    max_body_bytes: int = 1 << 20
    max_points: int = 1024
    max_values: int = 1 << 20
    max_k: int = 100
    max_range_res: int = 4
    max_range_cells: int = 100_000
    range_cache: int = 32

    def __post_init__(self):
        for name, value in asdict(self).items():
            least = 0 if name == "range_cache" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"Limits.{name} must be a positive integer, got {value!r}")


class Point(BaseModel):
    lat: float = Field(description="Latitude, degrees (-90..90).")
    lon: float = Field(description="Longitude, degrees (-180..180).")
    date: str | None = Field(None, description="YYYY-MM-DD; omit for the year-round prior.")
    covariates: list[float] | None = Field(
        None, description="The prior's covariates at this point, in the order /v1/species lists."
    )


class ScoresRequest(BaseModel):
    points: list[Point] = Field(description="Places (and dates) to score.")
    species: list[str] | None = Field(
        None, description="Species to score (default: every species of the prior)."
    )


def _finite(values) -> list:
    """Floats for JSON: NaN as null."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413, whether its
    Content-Length says so or its chunks add up to it. The body (at most ``limit`` bytes)
    is read before the app sees it, then handed over whole."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await _too_large(self.limit, send)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                return await _too_large(self.limit, send)
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        handed = False

        async def replay():
            nonlocal handed
            if not handed:
                handed = True
                return whole
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(limit: int, send):
    body = JSONResponse(
        {"detail": f"request body over {limit} bytes", "error": "RequestTooLarge"}, 413
    ).body
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(served: Served, limits: Limits = Limits()) -> FastAPI:
    """The FastAPI application serving ``served`` (see :func:`~geoprior.serve.load_served`).

    Example:
        >>> from geoprior.serve import create_app, load_served
        >>> app = create_app(load_served("birds.onnx"))  # doctest: +SKIP
    """
    app = FastAPI(
        title="geoprior",
        version=__version__,
        description=(
            "Where-and-when species priors: the probability that an observation made at a "
            "place (and date) is of each species (`observation`, rows sum to 1), and that "
            "each species occurs there (`presence`, fading beyond the training extent)."
        ),
    )
    app.state.served, app.state.limits = served, limits

    @app.exception_handler(GeopriorError)
    async def _library_error(request: Request, e: GeopriorError):
        status = 404 if isinstance(e, UnknownSpeciesError) and request.url.path.startswith(
            "/v1/range/") else 422
        return JSONResponse({"detail": str(e), "error": type(e).__name__}, status)

    @app.exception_handler(RequestValidationError)
    async def _schema_error(request: Request, e: RequestValidationError):
        problems = []
        for err in e.errors():
            where = " ".join(str(p) for p in err.get("loc", ()))
            got = ""
            if "input" in err and err.get("type") != "missing":
                text = repr(err["input"])
                got = f" (got {text if len(text) <= 60 else text[:57] + '...'})"
            problems.append(f"{where}: {err.get('msg', 'invalid')}{got}")
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        return JSONResponse({"detail": shown, "error": "RequestValidationError"}, 422)

    @app.get("/healthz", summary="Liveness and what is served")
    def healthz():
        return {
            "status": "ok",
            "backend": served.backend,
            "species": len(served.species),
            "geoprior_version": __version__,
        }

    @app.get("/v1/species", summary="The prior's species and what it takes")
    def species():
        return {
            "species": list(served.species),
            "n_species": len(served.species),
            "outputs": list(served.outputs),
            "uses_date": served.uses_date,
            "covariates": list(served.covariate_names),
            "far_km": served.far_km,
        }

    def _cov(values, n: int):
        return check_covariates(values, served.covariate_names, n)

    @app.get("/v1/predict", summary="The k most likely species at a place (and date)")
    def predict(
        lat: float = Query(description="Latitude, degrees."),
        lon: float = Query(description="Longitude, degrees."),
        date: str | None = Query(None, description="YYYY-MM-DD (omit: year-round)."),
        k: int = Query(
            min(10, limits.max_k), description=f"How many species (1..{limits.max_k})."
        ),
        covariates: str | None = Query(
            None, description="Comma-separated covariate values, in the order /v1/species lists."
        ),
    ):
        if not 1 <= k <= limits.max_k:
            raise ConfigError(f"k must be in 1..{limits.max_k}, got {k}")
        query = prepare_query(lat, lon, date or None)
        cov = None
        if covariates is not None:
            try:
                cov = [float(v) for v in covariates.split(",")]
            except ValueError:
                raise ConfigError(
                    f"covariates must be comma-separated numbers, got {covariates!r}"
                ) from None
        answer = served.answer(query, None, _cov(cov, 1))
        rank_by = answer.observation if answer.observation is not None else answer.presence
        top = np.argsort(-rank_by[0], kind="stable")[: min(k, len(served.species))]
        rows = []
        for rank, j in enumerate(top.tolist(), 1):
            row = {"rank": rank, "species": served.species[j]}
            for output in ("observation", "presence"):
                values = getattr(answer, output)
                if values is not None:
                    row[output] = float(values[0, j])
            rows.append(row)
        return {
            "lat": lat,
            "lon": lon,
            "date": None if np.isnat(query.dates[0]) else str(query.dates[0]),
            "ranked_by": "observation" if answer.observation is not None else "presence",
            "outside_extent": bool(answer.outside[0]),
            "distance_km": _finite([float(answer.distance_km[0])])[0],
            "far_km": served.far_km,
            "species": rows,
        }

    @app.post("/v1/scores", summary="Scores of many points for all or chosen species")
    def scores(body: ScoresRequest):
        n = len(body.points)
        if not 1 <= n <= limits.max_points:
            raise ConfigError(f"give 1..{limits.max_points} points per request, got {n}")
        cols = None if body.species is None else species_indices(body.species, served.species)
        width = len(served.species) if cols is None else len(cols)
        if n * width > limits.max_values:
            raise ConfigError(
                f"{n} points x {width} species = {n * width} scores, over the limit of "
                f"{limits.max_values} per request: ask for fewer points or species"
            )
        dates = [p.date for p in body.points]
        query = prepare_query(
            [p.lat for p in body.points], [p.lon for p in body.points],
            None if all(d is None for d in dates) else np.array(dates, dtype=object),
        )
        given = [p.covariates for p in body.points]
        cov = None
        if any(c is not None for c in given):
            if any(c is None for c in given):
                i = given.index(None)
                raise ConfigError(f"give covariates for every point or none; point {i} has none")
            cov = given
        answer = served.answer(query, cols, _cov(cov, n))
        names = list(served.species) if cols is None else [served.species[i] for i in cols]
        out = {"species": names}
        for output in ("observation", "presence"):
            values = getattr(answer, output)
            if values is not None:
                out[output] = values.tolist()
        out["outside_extent"] = answer.outside.tolist()
        out["distance_km"] = _finite(answer.distance_km.astype(float).tolist())
        return out

    @lru_cache(maxsize=limits.range_cache)
    def _range_geojson(name: str, month: int | None, res: int, bbox: str | None, dissolve: bool):
        from ..maps.grid import parse_bbox
        from ..maps.range_map import map_grid, range_map

        region = None if bbox is None else parse_bbox(bbox)
        if res > limits.max_range_res and region is None:
            raise ConfigError(
                f"res {res} is finer than {limits.max_range_res}, the finest global range map "
                "served: give a bbox (W,S,E,N)"
            )
        cells = len(map_grid(res, region, True))
        if cells > limits.max_range_cells:
            raise ConfigError(
                f"the map would hold {cells} cells, over the limit of {limits.max_range_cells}: "
                "choose a coarser res or a smaller bbox"
            )
        frame = range_map(served.prior, name, res=res, month=month, bbox=region, dissolve=dissolve)
        if not dissolve:
            frame = frame[frame["in_range"]].drop(columns=["species", "in_range"])
        return frame.to_json(drop_id=True)

    @app.get(
        "/v1/range/{species}.geojson",
        summary="A species' range on H3 cells as GeoJSON (EPSG:4326)",
        response_class=Response,
        responses={200: {"content": {"application/geo+json": {}}}},
    )
    def range_geojson(
        species: str,
        month: int | None = Query(None, description="1..12: the 15th of that month."),
        res: int = Query(3, description="H3 resolution."),
        bbox: str | None = Query(None, description="W,S,E,N: only cells inside."),
        dissolve: bool = Query(False, description="One MultiPolygon instead of one feature a cell."),
    ):
        # looked up in the prior's list (close matches suggested), never used as a path
        name = served.species[int(species_indices([species], served.species)[0])]
        if month is not None and not 1 <= month <= 12:
            raise ConfigError(f"month must be in 1..12, got {month}")
        body = _range_geojson(name, month, res, bbox, dissolve)
        return Response(body, media_type="application/geo+json")

    app.add_middleware(_BodyLimit, limit=limits.max_body_bytes)
    return app
