"""Many cells in one step: the cells of a worker trained as stacked networks.

`bank` stacks networks of one architecture, one row of parameters per network, and runs them
as one (`vmap(functional_call)`, or batched products for MLPs); `adam` is Adam as one update
over the rows, with a learning rate and step count per network; `train` is the batch loop of
`rules.base.train_batches` for all cells of a worker at once, equal to running it cell by
cell. `raygan.core.group.CellGroup` uses it to step the k cells of one process together
(`resources.cells_per_actor`, `resources.vectorise`).
"""
