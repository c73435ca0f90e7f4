"""The liveness phase: heal a majority of the voters in force, then require progress.

Theory of operation. After the fault phase, the network heals among a random majority
of the voters in force (as the chosen log says, `Checker.voters`), every learner and,
so that a joiner can learn from its bootstrap configuration, one voter of the initial
cluster; everyone else stays cut off. When a rejoin is in progress (its fence needs q
voters to answer) or a membership change may still be chosen (its new voters need a
majority too), every node is healed instead. Then, each within `liveness_ticks_max`:
a master appears among the healed voters, a set of fresh requests sent to it is chosen,
and the healed voters and learners of the configuration then in force converge (same
instance, no fence). Outsiders (removed nodes) are not required to converge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxdb.sim.checkers import Violation
from paxdb.sim.network import UNITS_PER_TICK
from paxdb.sim.workload import LIVENESS_RETRIES_MAX

if TYPE_CHECKING:
    from paxdb.sim.cluster import Simulation

LIVENESS_REQUESTS = 8


def heal_majority(sim: Simulation) -> tuple[int, ...]:
    voters, learners = sim.checker.voters, sim.checker.learners
    order = list(voters)
    sim.rng.shuffle(order)
    size = min(len(order), len(order) // 2 + 1 + sim.rng.randint(0, 1))
    healed = set(order[:size]) | (set(learners) & set(sim.nodes))
    if not healed & set(sim.members):
        healed.update([v for v in order if v in sim.members][:1])
    if sim.rejoin_in_progress() or sim.operator.may_change(sim.checker.voters_version):
        healed = set(sim.nodes)
    majority = tuple(sorted(healed))
    sim.network.heal(list(majority))
    outside = [n for n in sorted(sim.nodes) if n not in majority]
    sim.network.partition(list(majority), outside, one_way=False)
    sim.network.faults.loss = 0.0
    sim.network.faults.long_delay = 0.0
    sim.network.faults.delay_max = min(sim.network.faults.delay_max, 1500)
    for node_id in majority:
        if sim.nodes[node_id].replica is None:
            sim.start(sim.nodes[node_id])
    sim.healed = majority
    sim.log(f"heal majority {list(majority)}")
    return majority


def required(sim: Simulation) -> tuple[int, ...]:
    """The healed voters and learners of the configuration now in force."""
    assert sim.healed is not None
    members = set(sim.checker.voters) | set(sim.checker.learners)
    return tuple(n for n in sim.healed if n in members)


def master_among(sim: Simulation, nodes: tuple[int, ...]) -> int | None:
    for node_id in nodes:
        replica = sim.nodes[node_id].replica
        if replica is not None and replica.is_master:
            return node_id
    return None


def run_phases(sim: Simulation) -> None:
    options = sim.options
    sim.run_until(options.fault_ticks * UNITS_PER_TICK, fault_phase=True)
    healed = heal_majority(sim)
    deadline = sim.time + options.liveness_ticks_max * UNITS_PER_TICK
    step = UNITS_PER_TICK
    while master_among(sim, required(sim)) is None:
        if sim.time >= deadline:
            raise Violation(f"liveness: no master among healed nodes {list(healed)}")
        sim.run_until(sim.time + step, fault_phase=False)
    master = master_among(sim, required(sim))
    assert master is not None
    ids = [sim.workload.new_request(LIVENESS_RETRIES_MAX) for _ in range(LIVENESS_REQUESTS)]
    for request_id in ids:
        sim.propose(sim.nodes[master], request_id)
    sim.pump(sim.nodes[master])
    deadline = sim.time + options.liveness_ticks_max * UNITS_PER_TICK
    while not _liveness_done(sim, ids):
        if sim.time >= deadline:
            missing = [i for i in ids if i not in sim.checker.acknowledged]
            raise Violation(
                f"liveness: requests {missing} sent to master {master} were not chosen, or "
                f"nodes {list(required(sim))} did not converge, within "
                f"{options.liveness_ticks_max} ticks"
            )
        sim.run_until(sim.time + step, fault_phase=False)
    sim.checker.check_all_acknowledged()


def _liveness_done(sim: Simulation, ids: list[int]) -> bool:
    if any(i not in sim.checker.acknowledged for i in ids):
        return False
    instances = set()
    for node_id in required(sim):
        replica = sim.nodes[node_id].replica
        if replica is None or replica.fenced:
            return False
        instances.add(replica.instance)
    return len(instances) == 1
