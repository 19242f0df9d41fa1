"""Constraint families of the CP-SAT formulation, one private method each (names match
docs/formulation.md and the MILP mirror)."""

from __future__ import annotations

from ortools.sat.python import cp_model

from planner.costmodel.serving import COVER_TOL
from planner.formulations.cpsat import scaling
from planner.formulations.cpsat.variables import Variables, usage
from planner.formulations.index import Index


class Constraints:
    """Adds every constraint family of the formulation to ``model``."""

    def __init__(self, model: cp_model.CpModel, ix: Index, v: Variables) -> None:
        self.model, self.ix, self.v = model, ix, v

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
            self.model.add_exactly_one(self.v.pick[c] for c in cols).with_name(f"one_plan_{job}")

    def _device_once(self) -> None:
        # device_once[c, d]: a chosen pipeline column puts each device on one chain pool
        for c in self.ix.pipeline:
            col = self.ix.space.columns[c]
            for d in range(col.pp):
                row = sum(self.v.at[c, d, i] for i in range(len(col.layout.pools)))
                self.model.add(row == self.v.pick[c]).with_name(f"device_once_{c}_{d}")

    def _chain_order(self) -> None:
        # chain_start/end[c]: device 0 on the first chain pool, the last device on the last;
        # chain_step[c, d]: pos(d+1) - pos(d) in {0, 1} -> contiguous blocks, none empty
        for c in self.ix.pipeline:
            col = self.ix.space.columns[c]
            last = len(col.layout.pools) - 1
            at, pick = self.v.at, self.v.pick[c]
            self.model.add(at[c, 0, 0] == pick).with_name(f"chain_start_{c}")
            self.model.add(at[c, col.pp - 1, last] == pick).with_name(f"chain_end_{c}")
            for d in range(col.pp - 1):
                step = sum(i * (at[c, d + 1, i] - at[c, d, i]) for i in range(last + 1))
                self.model.add(step >= 0).with_name(f"chain_step_lo_{c}_{d}")
                self.model.add(step <= pick).with_name(f"chain_step_hi_{c}_{d}")

    def _serve_demand(self) -> None:
        # serve_prefill[s] / serve_decode[s]: engine goodput covers the request rate
        svc, n = self.ix.svc, self.v.n
        for s in svc.services:
            opts = [svc.options[o] for o in svc.by_service[s]]
            need = scaling.rate_right(svc.demand[s] * (1.0 - COVER_TOL))
            need_prefill = scaling.rate_right(svc.prefill_demand(s) * (1.0 - COVER_TOL))
            prefill = sum(scaling.rate_left(o.prefill_rps) * n[o.index] for o in opts)
            decode = sum(scaling.rate_left(o.decode_rps) * n[o.index] for o in opts)
            self.model.add(prefill >= need_prefill).with_name(f"serve_prefill_{s}")
            self.model.add(decode >= need).with_name(f"serve_decode_{s}")

    def _one_site(self) -> None:
        # one_site[s]: a service runs in one site; site_link[o]: n[o] <= upper[o] y[s, site]
        for s, sites in self.ix.svc_sites.items():
            self.model.add(sum(self.v.y[s, x] for x in sites) == 1).with_name(f"one_site_{s}")
        for o in self.ix.svc.options:
            y = self.v.y[o.service, o.site]
            self.model.add(self.v.n[o.index] <= o.upper * y).with_name(f"site_link_{o.index}")

    def _service_quota(self) -> None:
        # service_quota[s]: GPUs of a service's engines <= its max_gpus
        svc = self.ix.svc
        for s, cap in svc.max_gpus.items():
            row = sum(svc.options[o].gpus * self.v.n[o] for o in svc.by_service[s])
            self.model.add(row <= cap).with_name(f"service_quota_{s}")

    def _gpu_inventory(self) -> None:
        # gpu_inventory[p]: GPUs taken from pool p (training + serving engines) <= its GPUs
        for pool_id in self.ix.pools:
            have = self.ix.cluster.pool(pool_id).n_gpus
            terms = self.ix.pool_gpus.get(pool_id, [])
            parts = [usage(self.v, self.ix, t, round(t.coef)) for t in terms]
            parts += [o.gpus * self.v.n[o.index] for o in self.ix.svc_pool_gpus.get(pool_id, [])]
            self.model.add(cp_model.LinearExpr.sum(parts) <= have).with_name(
                f"gpu_inventory_{pool_id}"
            )

    def _power_budget(self) -> None:
        # power_budget[s]: PUE x (training GPUs at their caps + serving engines at their caps,
        # or expected peaks where the site oversubscribes, + node power) in site s <= budget
        for site_id in self.ix.sites:
            budget = self.ix.cluster.site(site_id).power_budget_mw * 1e6
            terms = self.ix.site_watts.get(site_id, [])
            parts = [usage(self.v, self.ix, t, scaling.watts_left(t.coef)) for t in terms]
            parts += [
                scaling.watts_left(o.budget_w) * self.v.n[o.index]
                for o in self.ix.svc_site_watts.get(site_id, [])
            ]
            self.model.add(cp_model.LinearExpr.sum(parts) <= scaling.watts_right(budget)).with_name(
                f"power_budget_{site_id}"
            )
