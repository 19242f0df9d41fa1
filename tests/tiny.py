"""Tiny random planning problems (hypothesis strategies) for oracle and conformance tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from planner.load import problem_from_dict
from planner.spec.problem import Problem

TINY_MODEL = {
    "id": "tiny-gpt",
    "n_layers": 8,
    "hidden_size": 1024,
    "n_heads": 8,
    "ffn_hidden_size": 4096,
    "vocab_size": 32000,
    "source": "synthetic 8-layer GPT for tests",
}
KINDS = ["throughput", "time_to_train", "energy", "carbon", "cost"]


@st.composite
def tiny_problems(draw: st.DrawFn) -> dict[str, Any]:
    """A raw input: 1-3 sites of 1-2 four-GPU nodes, random WAN and power budgets, the tiny
    GPT, a random objective."""
    n_sites = draw(st.integers(1, 3))
    gpu = draw(st.sampled_from(["h100-sxm-80gb", "a100-sxm-80gb"]))
    sites, pools, links = [], [], []
    for i in range(n_sites):
        nodes = draw(st.integers(1, 2))
        # ~0.8-1.3 kW per GPU at full power with node overhead and PUE: budgets from
        # "binds hard" to "ample".
        budget_kw = draw(st.sampled_from([2.0, 3.5, 5.0, 12.0])) * nodes
        sites.append(
            {
                "id": f"s{i}",
                "power_budget_mw": budget_kw / 1e3,
                "pue": draw(st.sampled_from([1.1, 1.3])),
                "carbon_g_per_kwh": draw(st.sampled_from([50, 400, 700])),
                "electricity_usd_per_mwh": draw(st.sampled_from([60, 120])),
            }
        )
        pools.append(
            {
                "id": f"p{i}",
                "site": f"s{i}",
                "gpu": gpu,
                "nodes": nodes,
                "gpus_per_node": 4,
                "inter_node_bw_gbps": draw(st.sampled_from([25, 100, 400])),
                "usd_per_gpu_hour": draw(st.sampled_from([0.0, 2.0])),
            }
        )
    for i in range(1, n_sites):
        links.append(
            {
                "src": f"s{i - 1}",
                "dst": f"s{i}",
                # Up to 6.4 Tbps: a WAN hop may be faster than a pool's NIC.
                "bw_gbps": draw(st.sampled_from([1, 10, 100, 400, 1600, 6400])),
                "rtt_ms": draw(st.sampled_from([2, 30, 120])),
                "tcp_window_mib": 8,
            }
        )
    kind = draw(st.sampled_from(KINDS))
    objective: dict[str, Any] = {"kind": kind}
    return {
        "name": "tiny-random",
        "cluster": {"sites": sites, "pools": pools, "links": links},
        "workloads": {
            "training": [
                {
                    "id": "job",
                    "model": TINY_MODEL,
                    "seq_len": 1024,
                    "global_batch_seqs": draw(st.sampled_from([16, 32])),
                    "tokens_to_train": 1e9,
                }
            ]
        },
        "objective": objective,
    }


def build(raw: dict[str, Any]) -> Problem:
    """The validated problem of a raw input."""
    return problem_from_dict(raw, {}, None)


SERVICE_KINDS = ["gpus", "energy", "carbon", "cost", "throughput"]


@st.composite
def tiny_serving_problems(draw: st.DrawFn) -> dict[str, Any]:
    """A raw input with one inference service (GPT-3 1.3B) on 1-2 sites of 1-2 two-GPU
    nodes, sometimes next to a tiny training job: random demand, SLO, roles, power budgets
    and oversubscription, and a random objective."""
    n_sites = draw(st.integers(1, 2))
    gpu = draw(st.sampled_from(["h100-sxm-80gb", "a100-sxm-80gb"]))
    sites, pools = [], []
    for i in range(n_sites):
        nodes = draw(st.integers(1, 2))
        sites.append(
            {
                "id": f"s{i}",
                "power_budget_mw": draw(st.sampled_from([1.5, 3.0, 8.0])) * nodes / 1e3,
                "pue": draw(st.sampled_from([1.1, 1.3])),
                "carbon_g_per_kwh": draw(st.sampled_from([50, 400])),
                "power_oversubscription": draw(st.booleans()),
            }
        )
        pools.append(
            {
                "id": f"p{i}",
                "site": f"s{i}",
                "gpu": gpu,
                "nodes": nodes,
                "gpus_per_node": 2,
                "usd_per_gpu_hour": draw(st.sampled_from([0.0, 2.0])),
            }
        )
    service = {
        "id": "svc",
        "model": "gpt3-1.3b",
        "arrival_rate_rps": draw(st.sampled_from([5.0, 20.0, 60.0, 150.0])),
        "prompt_tokens": {"mean": draw(st.sampled_from([256, 1024])), "std": 200, "max": 1536},
        "output_tokens": {"mean": draw(st.sampled_from([64, 256])), "min": 2, "max": 500},
        "slo": {
            "ttft_ms": draw(st.sampled_from([60, 250])),
            "tpot_ms": draw(st.sampled_from([8, 30])),
        },
        "disaggregated": draw(st.sampled_from([None, True, False])),
    }
    workloads: dict[str, Any] = {"inference": [service]}
    if draw(st.booleans()):
        workloads["training"] = [
            {
                "id": "job",
                "model": TINY_MODEL,
                "seq_len": 1024,
                "global_batch_seqs": 16,
                "tokens_to_train": 1e9,
            }
        ]
    return {
        "name": "tiny-serving",
        "cluster": {"sites": sites, "pools": pools, "links": []},
        "workloads": workloads,
        "objective": {"kind": draw(st.sampled_from(SERVICE_KINDS)), "serving_hours": 100},
    }
