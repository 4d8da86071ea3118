"""Network requests at the API (in process): what is accepted and stored, and every bad network or
table refused with a 422 naming the layer and field, or the row and column; a wide table trained by
the worker's own code in this process, and the limits that bound a table's size."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store import migrate
from tests.integration.training import train_queued

TABLE = b"age,income,label\n30,1.5,0\n40,2.5,1\n50,3.5,1\n60,4.5,0\n35,2.0,1\n45,3.0,0\n"
NET = [{"type": "dense", "units": 4}, {"type": "bump", "sigma_init": 0.3}, {"type": "dense", "units": 1}]


@pytest.fixture(scope="module")
def table_id(api: TestClient) -> str:
    r = api.post("/v1/datasets", files={"file": ("t.csv", TABLE)})
    assert r.status_code == 201, r.text
    assert r.json()["columns"] == ["age", "income", "label"] and r.json()["outputs"] == 0
    return r.json()["id"]  # type: ignore[no-any-return]


def job(table_id: str, layers: list[dict[str, Any]] | None = None, **parts: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"layers": layers or NET},
        "data": {"kind": "dataset", "id": table_id, "target": ["label"]},
        "training": {"loss": "binary_crossentropy", "metrics": ["accuracy"], "epochs": 2},
    }
    for key, value in parts.items():
        body[key] = {**body.get(key, {}), **value}
    return body


def refused(api: TestClient, body: dict[str, Any], status: int = 422) -> str:
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == status, r.text
    return str(r.json()["error"]["message"])


def test_a_network_job_is_stored_with_its_columns_and_widths(api: TestClient, table_id: str) -> None:
    r = api.post("/v1/jobs", json=job(table_id, data={"normalize": "standard"}))
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert "layer" not in spec and spec["model"]["outputs"] == 1
    assert spec["model"]["layers"][0] == {"type": "dense", "units": 4, "activation": "linear", "use_bias": True}
    assert spec["data"]["columns"] == ["age", "income"] and spec["data"]["target"] == ["label"]
    assert (spec["data"]["features"], spec["data"]["outputs"], spec["data"]["normalize"]) == (2, 1, "standard")
    assert spec["training"]["metrics"] == ["accuracy"]


def test_a_single_layer_job_keeps_its_spec_and_refuses_network_fields(api: TestClient, table_id: str) -> None:
    r = api.post("/v1/jobs", json={"data": {"kind": "synthetic", "n": 100}})
    assert r.status_code == 201
    spec = r.json()["spec"]
    assert "model" not in spec and "metrics" not in spec["training"] and "target" not in spec["data"]
    assert "needs a network" in refused(
        api, {"data": {"kind": "synthetic"}, "training": {"loss": "binary_crossentropy"}}
    )
    assert "needs a network" in refused(api, {"data": {"kind": "synthetic"}, "training": {"metrics": ["accuracy"]}})
    assert "either layer or model" in refused(api, {**job(table_id), "layer": {"type": "bump"}})
    # a table's single-column y is not shaped like its x: a single layer cannot train on it
    assert "data.id" in refused(api, {"data": {"kind": "dataset", "id": table_id}})


@pytest.mark.parametrize(
    "layers,where",
    [
        ([{"type": "dense", "units": 0}], "model.layers.0.units"),
        (
            [{"type": "dense", "units": 4}, {"type": "dense", "units": 1, "activation": "bogus"}],
            "model.layers.1.activation",
        ),
        ([{"type": "dense", "units": 4}, {"type": "bump", "sigma_init": -1}], "model.layers.1.sigma_init"),
        ([{"type": "dense", "units": 4}, {"type": "conv"}], "model.layers.1"),
        ([{"type": "dense", "units": 4, "color": "red"}], "model.layers.0.color"),
        ([], "model.layers"),
    ],
)
def test_a_bad_network_is_refused_naming_the_layer_and_field(
    api: TestClient, table_id: str, layers: list[dict[str, Any]], where: str
) -> None:
    body = job(table_id)
    body["model"]["layers"] = layers
    assert where in refused(api, body)


def test_limits_and_widths_name_the_place(api: TestClient, table_id: str) -> None:
    big = [{"type": "dense", "units": 4096}, {"type": "dense", "units": 4096}, {"type": "dense", "units": 1}]
    assert "model.layers: has" in refused(api, job(table_id, big), 413)
    assert "model.layers.0.units" in refused(api, job(table_id, [{"type": "dense", "units": 5000}]))
    many = [{"type": "activation", "activation": "relu"}] * 40 + [{"type": "dense", "units": 1}]
    assert "model.layers" in refused(api, job(table_id, many))
    assert "nothing to train" in refused(api, job(table_id, [{"type": "activation", "activation": "sigmoid"}]))
    two = [{"type": "dense", "units": 2, "activation": "sigmoid"}]
    assert "model.layers.0.units: is 2 but the target has 1 column" in refused(api, job(table_id, two))


def test_a_bad_table_is_refused_naming_the_row_and_column(api: TestClient, table_id: str) -> None:
    assert "data.target[0]: no column 'price'" in refused(api, job(table_id, data={"target": ["price"]}))
    assert "data.features[1]: no column 'x'" in refused(api, job(table_id, data={"features": ["age", "x"]}))
    assert "is also a target" in refused(api, job(table_id, data={"features": ["age", "label"]}))
    softmax = [{"type": "dense", "units": 2, "activation": "softmax"}]
    sparse = {"loss": "sparse_categorical_crossentropy"}
    r = api.post("/v1/jobs", json=job(table_id, softmax, training=sparse))
    assert r.status_code == 201, r.text  # labels 0 and 1 fit 2 classes
    # labels 0..1 do not fit one class; the message names the first bad row and the column
    one = [{"type": "dense", "units": 1, "activation": "softmax"}]
    assert "data row 2, column 'label': label 1 is not an integer in 0..0" in refused(
        api, job(table_id, one, training=sparse)
    )
    # binary cross-entropy takes targets in [0, 1]: `age` as the target is refused at its first row
    assert "data row 1, column 'age'" in refused(api, job(table_id, data={"target": ["age"]}))
    text = api.post("/v1/datasets", files={"file": ("t.csv", b"a,label\n1,0\n2,one\n")})
    assert text.status_code == 422 and "file row 3, column 2 (label)" in text.json()["error"]["message"]
    assert "data.kind" in refused(api, {"model": {"layers": NET}, "data": {"kind": "synthetic"}})


def test_a_constant_column_under_normalize_is_fine(api: TestClient) -> None:
    ds = api.post("/v1/datasets", files={"file": ("c.csv", b"c,v,label\n1,0.5,0\n1,0.7,1\n1,0.9,1\n1,0.1,0\n")})
    assert ds.status_code == 201
    body = job(ds.json()["id"], data={"normalize": "standard"})
    assert api.post("/v1/jobs", json=body).status_code == 201


def test_sweeps_address_layers_by_index_and_split_architectures_into_groups(api: TestClient, table_id: str) -> None:
    grid = {"model.layers.1.sigma_init": [0.1, 0.2], "model.layers.0.units": [4, 8], "training.seed": [1, 2]}
    r = api.post("/v1/sweeps", json={"base": job(table_id), "grid": grid})
    assert r.status_code == 201, r.text
    jobs = [api.get(f"/v1/jobs/{j}").json() for j in r.json()["jobs"]]
    assert sorted({j["spec"]["model"]["layers"][1]["sigma_init"] for j in jobs}) == [0.1, 0.2]
    assert sorted({j["spec"]["model"]["layers"][0]["units"] for j in jobs}) == [4, 8]
    bad = api.post("/v1/sweeps", json={"base": job(table_id), "grid": {"model.layers.7.units": [2]}})
    assert bad.status_code == 422 and "model.layers.7.units" in bad.json()["error"]["message"]


def test_fuse_keys_follow_the_architecture_not_the_starting_values(db: str, api: TestClient, table_id: str) -> None:
    from sqlalchemy import create_engine, text

    ids = []
    for layers in (NET, [{**NET[0]}, {"type": "bump", "sigma_init": 0.9}, NET[2]], [{**NET[0], "units": 5}, *NET[1:]]):
        r = api.post("/v1/jobs", json=job(table_id, layers, training={"seed": 4}))
        ids.append(r.json()["id"])
    with create_engine(db).connect() as c:
        keys = {k: v for k, v in c.execute(text("SELECT id, fuse_key FROM jobs")).tuples() if k in ids}
    assert keys[ids[0]] == keys[ids[1]] != keys[ids[2]]


def wide_table(rows: int = 40, features: int = 1024) -> bytes:
    """A CSV table of `features` columns f1..fF and a 0/1 `label` (whether f1 is positive)."""
    x = np.random.default_rng(0).normal(size=(rows, features)).round(3)
    lines = [",".join([*(f"f{i + 1}" for i in range(features)), "label"])]
    lines += [",".join([*map(str, row), str(int(row[0] > 0))]) for row in x]
    return ("\n".join(lines) + "\n").encode()


def test_a_table_of_1024_features_uploads_trains_and_predicts(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wide.db'}")
    migrate.upgrade(settings.database_url)
    with TestClient(create_app(settings)) as c:
        ds = c.post("/v1/datasets", files={"file": ("wide.csv", wide_table())})
        assert ds.status_code == 201, ds.text[:500]
        assert (ds.json()["n"], ds.json()["features"], ds.json()["columns"][-1]) == (40, 1025, "label")
        layers = [
            {"type": "dense", "units": 4, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"},
        ]
        body = job(ds.json()["id"], layers, training={"epochs": 1})
        r = c.post("/v1/jobs", json=body)
        assert r.status_code == 201, r.text[:500]
        assert r.json()["spec"]["data"]["features"] == 1024
        train_queued(settings)
        done = c.get(f"/v1/jobs/{r.json()['id']}").json()
        assert done["status"] == "succeeded", done.get("error")
        rows = np.random.default_rng(1).normal(size=(3, 1024)).round(3).tolist()
        p = c.post(f"/v1/models/{done['id']}:predict", json={"instances": rows})
        assert p.status_code == 200, p.text[:500]
        assert len(p.json()["predictions"]) == 3 and all(0 <= v <= 1 for v in p.json()["predictions"])


def too_large(r: Any) -> str:
    """The message of a 413 response."""
    assert r.status_code == 413, r.text[:500]
    return str(r.json()["error"]["message"])


def test_a_table_over_the_cells_or_bytes_limit_is_refused_naming_it(db: str) -> None:
    content, npz = wide_table(), io.BytesIO()
    np.savez(npz, x=np.zeros((40, 1025), np.float32), y=np.zeros((40, 1), np.float32))
    with TestClient(create_app(Settings(database_url=db, max_cells=40 * 1024))) as c:
        r = c.post("/v1/datasets", files={"file": ("wide.csv", content)})
        assert too_large(r).startswith(
            "file: has at least 40 rows x 1025 columns = 41000 values, more than the limit max_cells"
        )
        r = c.post("/v1/datasets", files={"file": ("wide.npz", npz.getvalue())})
        assert too_large(r).startswith(
            "file: x has 40 rows x 1025 columns = 41000 values, more than the limit max_cells"
        )
        inline = {"kind": "inline", "x": [[0.0] * 1025] * 40, "y": [[0.0]] * 40}
        r = c.post("/v1/jobs", json={"model": {"layers": NET}, "data": inline})
        assert too_large(r).startswith(
            "data.x: has 40 rows x 1025 columns = 41000 values, more than the limit max_cells"
        )
    with TestClient(create_app(Settings(database_url=db, max_upload_bytes=len(content) - 1))) as c:
        r = c.post("/v1/datasets", files={"file": ("wide.csv", content)})
        assert f"upload limit of {len(content) - 1} bytes" in too_large(r)


def test_an_inline_data_network_sweep_is_accepted_keeps_normalize_and_trains(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(40, 2))
    data = {"kind": "inline", "x": x.tolist(), "y": (x[:, :1] * 0.1).tolist(), "normalize": "standard"}
    train = {"epochs": 2, "batch_size": 8, "validation_split": 0.25, "metrics": ["mae"], "seed": 1}
    base = {"model": {"layers": NET}, "data": data, "training": train}
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sweep.db'}")
    migrate.upgrade(settings.database_url)
    with TestClient(create_app(settings)) as c:
        one = c.post("/v1/jobs", json=base)  # the same request as one job: x (40, 2), y (40, 1)
        assert one.status_code == 201, one.text
        r = c.post("/v1/sweeps", json={"base": base, "grid": {"model.layers.1.sigma_init": [0.2, 0.6]}})
        assert r.status_code == 201, r.text
        stored = c.get(f"/v1/sweeps/{r.json()['id']}").json()["request"]["base"]["data"]
        assert stored == {"kind": "dataset", "id": stored["id"], "normalize": "standard"}
        train_queued(settings)
        jobs = [c.get(f"/v1/jobs/{j}").json() for j in r.json()["jobs"]]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], [j["error"] for j in jobs]
    assert [j["spec"]["model"]["layers"][1]["sigma_init"] for j in jobs] == [0.2, 0.6]
    assert all(j["spec"]["data"]["normalize"] == one.json()["spec"]["data"]["normalize"] for j in jobs)
    assert all(len(j["params"]["bump_1"]["sigma"]) == 4 and "val_mae" in j["metrics"] for j in jobs)
