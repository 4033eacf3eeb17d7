"""Where the Ray ingest puts its actors and how they share GPUs (no cluster needed)."""

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from facesearch.ray_pool import plan_actors


def _node(node_id: str, cpus: float, gpus: float = 0) -> dict:
    resources = {"CPU": cpus, "memory": 1e9} | ({"GPU": gpus} if gpus else {})
    return {"NodeID": node_id, "Alive": True, "Resources": resources}


def test_one_actor_per_cpu_spread_over_the_nodes_in_turn():
    plan = plan_actors([_node("head", 0), _node("a", 2), _node("b", 1)])
    assert [node for node, _ in plan] == ["a", "b", "a"]
    assert all(gpus == 0 for _, gpus in plan)


def test_a_set_number_of_actors_wraps_around_the_cpus():
    assert [n for n, _ in plan_actors([_node("a", 1), _node("b", 1)], workers=3)] == ["a", "b", "a"]
    assert [n for n, _ in plan_actors([_node("a", 4)], workers=1)] == ["a"]


def test_actors_on_a_gpu_node_share_its_gpus_and_cpu_nodes_ask_for_none():
    plan = plan_actors([_node("gpu", 4, gpus=1), _node("cpu", 2)])
    shares = {}
    for node, gpus in plan:
        shares.setdefault(node, set()).add(gpus)
    assert shares == {"gpu": {0.25}, "cpu": {0.0}}
    # More GPUs than actors: whole GPUs each, as Ray requires above one.
    assert {g for _, g in plan_actors([_node("big", 2, gpus=5)])} == {2.0}


def test_a_cluster_without_cpus_gets_no_actors():
    assert plan_actors([_node("head", 0)]) == []
