"""Constraint families of the MILP, one private method each (names match
docs/formulation.md and the CP-SAT mirror)."""

from __future__ import annotations

import pulp

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

    def _gpu_inventory(self) -> None:
        # gpu_inventory[p]: GPUs taken from pool p <= its GPUs
        for pool_id, terms in self.ix.pool_gpus.items():
            have = self.ix.cluster.pool(pool_id).n_gpus
            row = pulp.lpSum(usage(self.v, self.ix, t) for t in terms)
            self.prob += row <= have, f"gpu_inventory_{pool_id}"

    def _power_budget(self) -> None:
        # power_budget[s]: PUE x (GPUs at their caps + node power) in site s <= budget
        for site_id, terms in self.ix.site_watts.items():
            budget = self.ix.cluster.site(site_id).power_budget_mw * 1e6
            row = pulp.lpSum(usage(self.v, self.ix, t) for t in terms)
            self.prob += row <= budget, f"power_budget_{site_id}"
