"""One plan for every job: a single layer (stored by any release) is a one-layer plan, a network
its layers; requests and stored specs are told apart the same way."""

from __future__ import annotations

from app.jobs.schemas import JobRequest
from app.model import plan

FIRST_RELEASE_ROW = {  # a single-layer spec as the first release stored it: no `model` key at all
    "layer": {"type": "gaussian", "a_init": 1.0, "b_init": 1.0, "c_init": 0.0, "per_feature": True},
    "data": {"kind": "synthetic", "n": 100, "features": 1},
    "training": {"epochs": 3},
}
NETWORK_ROW = {
    "model": {"layers": [{"type": "dense", "units": 4}, {"type": "bump"}, {"type": "dense", "units": 2}], "outputs": 2},
    "data": {"kind": "dataset", "id": "d", "features": 5},
}


def test_a_single_layer_of_any_release_is_a_one_layer_plan() -> None:
    p = plan.of(FIRST_RELEASE_ROW)
    assert p.single and p.name == "gaussian" and p.layers == [FIRST_RELEASE_ROW["layer"]]
    assert not plan.is_network(FIRST_RELEASE_ROW) and not plan.is_network({**FIRST_RELEASE_ROW, "model": None})
    assert plan.output_width({**FIRST_RELEASE_ROW, "data": {"kind": "inline", "features": 3}}) == 3


def test_a_network_is_its_layers_and_requests_are_read_alike() -> None:
    p = plan.of(NETWORK_ROW)
    assert not p.single and p.name == "dense-bump-dense" and plan.output_width(NETWORK_ROW) == 2
    layer_request = JobRequest.model_validate({"data": {"kind": "synthetic"}})
    network_request = JobRequest.model_validate(
        {"model": {"layers": [{"type": "dense", "units": 1}]}, "data": {"kind": "dataset", "id": "d"}}
    )
    assert not plan.is_network(layer_request) and plan.is_network(network_request)
    assert plan.is_network(network_request.model_dump(mode="json"))
    assert not plan.is_network(layer_request.model_dump(mode="json"))
