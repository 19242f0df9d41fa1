"""Constraint families of the MILP, one private method each (names match
docs/formulation.md and the CP-SAT mirror)."""

from __future__ import annotations

import pulp

from planner.costmodel.serving import COVER_TOL
from planner.formulations.index import Index
from planner.formulations.milp.variables import Variables, usage


class Constraints:
    """Adds every constraint family of the formulation to ``prob``."""

    def __init__(self, prob: pulp.LpProblem, ix: Index, v: Variables) -> None:
        self.prob, self.ix, self.v = prob, ix, v

    def add_all(self) -> None:
        self._one_plan()
        self._device_once()
        self._chain_order()
        self._serve_demand()
        self._one_site()
        self._service_quota()
        self._gpu_inventory()
        self._power_budget()

    def _one_plan(self) -> None:
        # one_plan[j]: every training job runs exactly one column
        for job, cols in self.ix.by_job.items():
            self.prob += pulp.lpSum(self.v.pick[c] for c in cols) == 1, f"one_plan_{job}"

    def _device_once(self) -> None:
        # device_once[c, d]: a chosen pipeline column puts each device on one chain pool
        for c in self.ix.pipeline:
            col = self.ix.space.columns[c]
            for d in range(col.pp):
                row = pulp.lpSum(self.v.at[c, d, i] for i in range(len(col.layout.pools)))
                self.prob += row == self.v.pick[c], f"device_once_{c}_{d}"

    def _chain_order(self) -> None:
        # chain_start/end[c]: device 0 on the first chain pool, the last device on the last;
        # chain_step[c, d]: pos(d+1) - pos(d) in {0, 1} -> contiguous blocks, none empty
        for c in self.ix.pipeline:
            col = self.ix.space.columns[c]
            last = len(col.layout.pools) - 1
            at, pick = self.v.at, self.v.pick[c]
            self.prob += at[c, 0, 0] == pick, f"chain_start_{c}"
            self.prob += at[c, col.pp - 1, last] == pick, f"chain_end_{c}"
            for d in range(col.pp - 1):
                step = pulp.lpSum(i * (at[c, d + 1, i] - at[c, d, i]) for i in range(last + 1))
                self.prob += step >= 0, f"chain_step_lo_{c}_{d}"
                self.prob += step <= pick, f"chain_step_hi_{c}_{d}"

    def _serve_demand(self) -> None:
        # serve_prefill[s] / serve_decode[s]: engine goodput covers the request rate
        svc, n = self.ix.svc, self.v.n
        for s in svc.services:
            opts = [svc.options[o] for o in svc.by_service[s]]
            prefill = pulp.lpSum(o.prefill_rps * n[o.index] for o in opts if o.prefill_rps)
            decode = pulp.lpSum(o.decode_rps * n[o.index] for o in opts if o.decode_rps)
            need = svc.demand[s] * (1.0 - COVER_TOL)
            self.prob += prefill >= svc.prefill_demand(s) * (1.0 - COVER_TOL), f"serve_prefill_{s}"
            self.prob += decode >= need, f"serve_decode_{s}"

    def _one_site(self) -> None:
        # one_site[s]: a service runs in one site; site_link[o]: n[o] <= upper[o] y[s, site]
        for s, sites in self.ix.svc_sites.items():
            self.prob += pulp.lpSum(self.v.y[s, x] for x in sites) == 1, f"one_site_{s}"
        for o in self.ix.svc.options:
            y = self.v.y[o.service, o.site]
            self.prob += self.v.n[o.index] <= o.upper * y, f"site_link_{o.index}"

    def _service_quota(self) -> None:
        # service_quota[s]: GPUs of a service's engines <= its max_gpus
        svc = self.ix.svc
        for s, cap in svc.max_gpus.items():
            row = pulp.lpSum(svc.options[o].gpus * self.v.n[o] for o in svc.by_service[s])
            self.prob += row <= cap, f"service_quota_{s}"

    def _gpu_inventory(self) -> None:
        # gpu_inventory[p]: GPUs taken from pool p (training + serving engines) <= its GPUs
        for pool_id in self.ix.pools:
            have = self.ix.cluster.pool(pool_id).n_gpus
            row = pulp.lpSum(usage(self.v, self.ix, t) for t in self.ix.pool_gpus.get(pool_id, []))
            row += pulp.lpSum(
                o.gpus * self.v.n[o.index] for o in self.ix.svc_pool_gpus.get(pool_id, [])
            )
            self.prob += row <= have, f"gpu_inventory_{pool_id}"

    def _power_budget(self) -> None:
        # power_budget[s]: PUE x (training GPUs at their caps + serving engines at their caps,
        # or expected peaks where the site oversubscribes, + node power) in site s <= budget
        for site_id in self.ix.sites:
            budget = self.ix.cluster.site(site_id).power_budget_mw * 1e6
            row = pulp.lpSum(usage(self.v, self.ix, t) for t in self.ix.site_watts.get(site_id, []))
            row += pulp.lpSum(
                o.budget_w * self.v.n[o.index] for o in self.ix.svc_site_watts.get(site_id, [])
            )
            self.prob += row <= budget, f"power_budget_{site_id}"
