"""geoprior serve: a real uvicorn server on 127.0.0.1, asked by a real HTTP client (httpx)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

from geoprior.errors import CoordinateError, DateError, UnknownSpeciesError  # noqa: E402
from geoprior.export import export_onnx  # noqa: E402
from geoprior.maps import range_map  # noqa: E402
from geoprior.query import prepare_query, species_indices  # noqa: E402
from geoprior.serve import Limits, Served, create_app, load_served, running  # noqa: E402

LIMITS = Limits(max_points=64, max_values=64 * 4, max_k=4, max_body_bytes=20_000,
                max_range_res=2, max_range_cells=5000)


@pytest.fixture(scope="module")
def onnx_path(trained_prior, tmp_path_factory):
    return export_onnx(trained_prior, tmp_path_factory.mktemp("serve") / "p.onnx")


@pytest.fixture(scope="module", params=["jax", "onnx"])
def server(request, trained_prior, onnx_path):
    served = Served(trained_prior) if request.param == "jax" else load_served(onnx_path)
    with running(create_app(served, LIMITS)) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client, request.param


def _message(error, fn):
    with pytest.raises(error) as e:
        fn()
    return str(e.value)


def test_health_and_species(server, trained_prior):
    client, backend = server
    assert client.get("/healthz").json() == {
        "status": "ok", "backend": backend, "species": 5,
        "geoprior_version": client.get("/healthz").json()["geoprior_version"]}
    body = client.get("/v1/species").json()
    assert body["species"] == list(trained_prior.species)
    assert body["outputs"] == ["observation", "presence"] and body["uses_date"] is True
    assert body["far_km"] == pytest.approx(trained_prior.far_km)


@pytest.mark.parametrize("lat,lon,date", [(48.0, 10.0, "2021-07-01"), (60.0, -100.0, None),
                                          (-89.9, 179.9, "2021-01-05")])
def test_predict_is_the_librarys_answer(server, trained_prior, lat, lon, date):
    client, _ = server
    params = {"lat": lat, "lon": lon, "k": 3} | ({"date": date} if date else {})
    r = client.get("/v1/predict", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    want = trained_prior.top_k(lat, lon, date, k=3)
    assert [s["species"] for s in body["species"]] == want.species.tolist()
    np.testing.assert_allclose([s["observation"] for s in body["species"]], want.prob, atol=1e-5)
    presence = trained_prior.predict(lat, lon, date, species=want.species.tolist(),
                                     output="presence")[0]
    np.testing.assert_allclose([s["presence"] for s in body["species"]], presence, atol=1e-5)
    assert body["outside_extent"] == bool(trained_prior.outside(lat, lon)[0])
    assert body["distance_km"] == pytest.approx(float(trained_prior.distance_km(lat, lon)[0]),
                                                rel=1e-4, abs=0.05)
    assert body["date"] == date and [s["rank"] for s in body["species"]] == [1, 2, 3]


def test_predict_errors_carry_the_librarys_message(server):
    client, _ = server
    for params, error, call in [
        ({"lat": 91, "lon": 0}, CoordinateError, lambda: prepare_query(91.0, 0.0)),
        ({"lat": 0, "lon": 0, "date": "2021-02-30"}, DateError,
         lambda: prepare_query(0.0, 0.0, "2021-02-30")),
    ]:
        r = client.get("/v1/predict", params=params)
        assert r.status_code == 422
        assert r.json() == {"detail": _message(error, call), "error": error.__name__}
    r = client.get("/v1/predict", params={"lat": 0, "lon": 0, "k": 5})
    assert r.status_code == 422 and "k must be in 1..4" in r.json()["detail"]
    r = client.get("/v1/predict", params={"lat": "north", "lon": 0})
    assert r.status_code == 422 and r.json()["error"] == "RequestValidationError"
    assert "query lat" in r.json()["detail"] and "'north'" in r.json()["detail"]
    r = client.get("/v1/predict", params={"lon": 0})
    assert r.status_code == 422 and "query lat: Field required" in r.json()["detail"]
    r = client.get("/v1/predict", params={"lat": 0, "lon": 0, "covariates": "1"})
    assert r.status_code == 422 and "trained without covariates" in r.json()["detail"]


def test_scores_of_many_points(server, trained_prior):
    client, _ = server
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-90, 90, 40), rng.uniform(-180, 180, 40)
    dates = [None if i % 3 else f"2021-{1 + i % 12:02d}-10" for i in range(40)]
    points = [{"lat": a, "lon": b} | ({"date": d} if d else {}) for a, b, d in zip(lat, lon, dates)]
    r = client.post("/v1/scores", json={"points": points})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["species"] == list(trained_prior.species)
    when = np.array([d or "NaT" for d in dates], dtype="datetime64[D]")
    for output in ("observation", "presence"):
        want = trained_prior.predict(lat, lon, when, output=output)
        np.testing.assert_allclose(body[output], want, atol=1e-5, rtol=1e-4)
    np.testing.assert_array_equal(body["outside_extent"], trained_prior.outside(lat, lon))
    chosen = ["Hiemalis winter", "Borealis alpha"]
    r = client.post("/v1/scores", json={"points": points[:5], "species": chosen}).json()
    assert r["species"] == chosen and np.asarray(r["presence"]).shape == (5, 2)
    want = trained_prior.predict(lat[:5], lon[:5], when[:5], species=chosen, output="presence")
    np.testing.assert_allclose(r["presence"], want, atol=1e-5, rtol=1e-4)


def test_scores_are_bounded_and_validated(server):
    client, _ = server
    point = {"lat": 1.0, "lon": 2.0}
    r = client.post("/v1/scores", json={"points": [point] * 65})
    assert r.status_code == 422 and "1..64 points" in r.json()["detail"]
    r = client.post("/v1/scores", json={"points": [point] * 60})  # 60 x 5 > 256 values
    assert r.status_code == 422 and "over the limit of 256" in r.json()["detail"]
    r = client.post("/v1/scores", json={"points": []})
    assert r.status_code == 422
    r = client.post("/v1/scores", json={"points": [point], "species": ["Borealis alfa"]})
    assert r.status_code == 422 and r.json() == {
        "detail": _message(UnknownSpeciesError, lambda: species_indices(
            ["Borealis alfa"], ["Borealis alpha", "Australis beta", "Europaea gamma",
                                "Aestiva summer", "Hiemalis winter"])),
        "error": "UnknownSpeciesError"}
    r = client.post("/v1/scores", json={"points": [point, {"lat": 95, "lon": 0}]})
    assert r.status_code == 422 and "row 1 = 95.0" in r.json()["detail"]
    r = client.post("/v1/scores", json={"points": [{"lat": 1}]})
    assert r.status_code == 422 and "lon" in r.json()["detail"]
    big = {"points": [point] * 2000}  # > 20,000 bytes
    r = client.post("/v1/scores", json=big)
    assert r.status_code == 413 and r.json()["error"] == "RequestTooLarge"

    def chunks():  # no Content-Length: the streamed bytes are counted
        for _ in range(30):
            yield b" " * 1000

    r = client.post("/v1/scores", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_range_geojson_is_the_range_map(server, trained_prior):
    client, _ = server
    r = client.get("/v1/range/Aestiva summer.geojson", params={"month": 7, "res": 2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    features = r.json()["features"]
    frame = range_map(trained_prior, "Aestiva summer", res=2, month=7)
    assert {f["properties"]["h3_cell"] for f in features} == set(frame.h3_cell[frame.in_range])
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in features)
    one = client.get("/v1/range/Aestiva summer.geojson",
                     params={"month": 7, "res": 2, "dissolve": True}).json()
    assert len(one["features"]) == 1


def test_range_refuses_unknown_species_and_big_maps(server):
    client, _ = server
    r = client.get("/v1/range/Aestiva sumer.geojson")
    assert r.status_code == 404 and "Did you mean 'Aestiva summer'" in r.json()["detail"]
    for name in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "prior.json"):
        r = client.get(f"/v1/range/{name}.geojson")
        assert r.status_code == 404 and "root:" not in r.text
    r = client.get("/v1/range/Aestiva summer.geojson", params={"res": 3})
    assert r.status_code == 422 and "give a bbox" in r.json()["detail"]
    r = client.get("/v1/range/Aestiva summer.geojson",
                   params={"res": 5, "bbox": "-20,30,40,70"})
    assert r.status_code == 422 and "over the limit of 5000" in r.json()["detail"]
    r = client.get("/v1/range/Aestiva summer.geojson", params={"month": 13})
    assert r.status_code == 422 and "month must be in 1..12" in r.json()["detail"]


def test_openapi_docs(server):
    client, _ = server
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/scores", "/v1/species", "/healthz",
            "/v1/range/{species}.geojson"} <= set(paths)


def test_concurrent_requests_agree(server):
    from concurrent.futures import ThreadPoolExecutor

    client, _ = server
    params = {"lat": 48.0, "lon": 10.0, "date": "2021-07-01", "k": 4}
    want = client.get("/v1/predict", params=params).json()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: client.get("/v1/predict", params=params).json(), range(32)))
    assert all(g == want for g in got)


def test_limits_are_checked():
    from geoprior import ConfigError

    with pytest.raises(ConfigError, match="max_points"):
        Limits(max_points=0)


def test_the_command_serves_an_export(onnx_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "geoprior.cli", "serve", str(onnx_path), "--port", str(port),
         "--threads", "1", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert r.json()["backend"] == "onnx"
        r = httpx.get(f"http://127.0.0.1:{port}/v1/predict", params={"lat": 48, "lon": 10})
        assert r.status_code == 200 and len(r.json()["species"]) == 5
    finally:
        proc.terminate()
        proc.wait(30)
