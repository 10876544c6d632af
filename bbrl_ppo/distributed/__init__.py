"""One run on several processes and machines, over `torch.distributed`.

Every process (rank) runs the same algorithm on its share of the envs and of each
minibatch; a few collectives keep them one algorithm:

- `context`: which rank this is, the device, and the process group (torchrun's, or
  one the user made); with one process every collective is skipped.
- `devices`: ``algorithm.device`` (cpu, cuda, cuda:N, auto) as a torch device.
- `collectives`: sums, minima, broadcasts and gathers over the ranks.
- `statistics`: advantage normalization, explained variance and means over every
  rank's data, each equal to the single-process computation with one process.
- `gradients`: each minibatch's gradients averaged over the ranks in one all_reduce.
"""
