"""`fresh` (raygan's): the `lipizzaner` rule with neighbours refreshed during the generation.

Adversaries frozen for a whole generation can be exploited by small networks
(`bench/stale_adversary.py`): 80 % of draws 20 steps stale collapsed every seed on the ring
of 8. Here the controller runs a generation as synchronous rounds of
`training.exchange_every` batches; before each round every cell publishes its centre and
reloads its neighbours' snapshots, so an adversary is at most that many batches old.
"""

from __future__ import annotations

from raygan.core.rules.lipizzaner import Lipizzaner


class Fresh(Lipizzaner):
    """`lipizzaner` with neighbour snapshots at most `exchange_every` batches old."""

    name = "fresh"
