"""Many cells in one step: the cells of a worker trained as stacked networks.

`bank` stacks networks of one architecture (`torch.func.stack_module_state`) and runs them
with `vmap(functional_call)`; `adam` is Adam as one update over the stack, with a learning
rate and step count per network; `train` is the batch loop of `rules.base.train_batches` for
all cells of a worker at once, equal to running it cell by cell; `group` keeps k cells of one
process in step (`resources.cells_per_actor`, `resources.vectorise`).
"""
