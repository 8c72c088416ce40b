"""`lipizzaner`: the reference MNIST rule (selection off), centre trained in place.

Each batch, the centre G steps against a D drawn uniformly from the neighbourhood (the cell's
own live D or a neighbour's snapshot from the start of the generation), and the centre D
steps against a G drawn likewise; `training.d_every` thins the D steps (the reference MNIST
configs use 2). Neighbours' networks are never trained or copied: the rule couples cells only
through whom each centre trains against.
"""

from __future__ import annotations

from raygan.core.rules.base import Generation, Outcome, Pairing, Rule, kept, vary


class Lipizzaner(Rule):
    """Centre in place against adversaries drawn per batch from the neighbourhood."""

    name = "lipizzaner"

    def begin(self, gen: Generation) -> Pairing:
        """The centre itself trains; its adversaries are the neighbourhood's networks."""
        neighbours = gen.members[1:]
        g_adv = [(gen.cell, gen.d.net), *zip(neighbours, gen.d_slots)]
        d_adv = [(gen.cell, gen.g.net), *zip(neighbours, gen.g_slots)]
        mutated = {id(gen.g): vary(gen, gen.g), id(gen.d): vary(gen, gen.d)}
        return Pairing([gen.g], [gen.d], g_adv, d_adv, mutated)

    def end(self, gen: Generation, pairing: Pairing) -> Outcome:
        """The trained centre stays; its fitness is measured again against the neighbourhood."""
        g_fit, d_fit = gen.fitness(
            [gen.g.net, *gen.g_slots], [gen.d.net, *gen.d_slots], gen.fitness_batch()
        )
        gen.g.fitness, gen.d.fitness = g_fit[0], d_fit[0]
        return Outcome(
            kept(gen.g, gen.cell, pairing.lr_mutated[id(gen.g)]),
            kept(gen.d, gen.cell, pairing.lr_mutated[id(gen.d)]),
        )
