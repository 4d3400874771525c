"""How batches reach the train step: one interface, two sources.

- `DeviceFeed` (in-memory datasets: digits, CIFAR, SVHN, npz): every split lives on the devices
  whole, as uint8; the epoch order is a device-side permutation from (seed, epoch); a batch is an
  index gather inside the jitted step. Nothing crosses from the host during an epoch.
- `StreamFeed` (streaming datasets: imagenet2012): host threads decode batches in an order from
  (seed, epoch) with a bounded prefetch; each batch is copied to the devices explicitly
  (`jax.device_put`, split over the `data` axis) and the step standardizes it there.

`make_feed` picks one (the only place that asks `dataset.streamed`). Both give
`run_epoch(state, metrics, epoch, num_steps, step_key, aux, on_step)`,
`evaluate(variables, split, with_noise)` (sums of `step.make_eval_terms`, as host numbers),
`splits` (the splits they can evaluate) and `noise_active`.
"""

from __future__ import annotations

import itertools

import jax
from jax.sharding import Mesh

from spectral_jax import parallel
from spectral_jax.train import step as step_lib


EVAL_SPLITS = ("train", "test", "extra")  # what training evaluates (val only through analysis)


def make_feed(dataset, model, config, schedule, mesh: Mesh, batch_fn, noise, data_key: jax.Array, members: int = 0):
    """The feed for `dataset`: streamed (imagenet2012) or on the devices whole; `schedule` a
    config.Schedule. `members=K` trains an ensemble (in-memory data only): `data_key` [K]."""
    if dataset.streamed:
        return StreamFeed(dataset, model, config, schedule, mesh, batch_fn, noise)
    return DeviceFeed(dataset, model, config, schedule, mesh, batch_fn, noise, data_key, members)


class DeviceFeed:
    def __init__(self, dataset, model, config, schedule, mesh: Mesh, batch_fn, noise, data_key: jax.Array,
                 members: int = 0):
        steps_per_epoch = schedule.steps_per_epoch
        self.splits = {name: step_lib.DeviceSplit.put(split, dataset.mean, dataset.std, mesh)
                       for name, split in dataset.splits.items() if name in EVAL_SPLITS}
        self.train = self.splits["train"]
        self._step = step_lib.make_train_step(model, config, dataset.num_classes, schedule.total_steps,
                                              steps_per_epoch, mesh, batch_fn, members)
        self._data_key = parallel.put_replicated(data_key, mesh)
        self._perm = step_lib.make_epoch_permutation(steps_per_epoch, len(dataset.split("train")), members)
        self._eval = step_lib.make_eval_fn(model, config.eval_batch_size, dataset.num_classes, mesh, noise, members)
        self._eval_clean = (step_lib.make_eval_fn(model, config.eval_batch_size, dataset.num_classes, mesh,
                                                  members=members)
                            if noise is not None and noise.active else self._eval)  # one compile when equal
        self.noise_active = noise is not None and noise.active

    def run_epoch(self, state, metrics, epoch: int, num_steps: int, step_key, aux, on_step):
        perm = self._perm(self._data_key, state["step"])  # from the step on the device: no host value crosses
        pace = parallel.Pacer()
        for _ in range(num_steps):
            state, metrics = pace(self._step(state, metrics, self.train, perm, step_key, aux))
            on_step()
        return state, metrics

    def evaluate(self, variables, split: str, with_noise: bool = True) -> dict:
        fn = self._eval if with_noise else self._eval_clean
        return parallel.to_host(fn(variables, self.splits[split]))


class StreamFeed:
    def __init__(self, dataset, model, config, schedule, mesh: Mesh, batch_fn, noise=None):
        if noise is not None and noise.active:
            raise ValueError("Noise fitting needs an in-memory dataset (its evaluation covers the whole training set).")
        self.dataset, self.config, self.mesh = dataset, config, mesh
        self.noise_active = False
        self.mean, self.std = parallel.put_replicated((dataset.mean, dataset.std), mesh)
        self._step = step_lib.make_stream_train_step(model, config, dataset.num_classes, schedule.total_steps, mesh,
                                                     batch_fn)
        self._eval = step_lib.make_stream_eval_fn(model, dataset.num_classes, mesh)
        self.splits = {name: split for name, split in dataset.splits.items() if name in EVAL_SPLITS}

    def _put(self, host_batch):
        return parallel.put_batch((host_batch.images, host_batch.labels, host_batch.mask), self.mesh)

    def run_epoch(self, state, metrics, epoch: int, num_steps: int, step_key, aux, on_step):
        batches = self.dataset.split("train").batches(self.config.batch_size, seed=self.config.seed, epoch=epoch)
        pace = parallel.Pacer()
        for host_batch in itertools.islice(batches, num_steps):
            images, labels, _ = self._put(host_batch)
            state, metrics = pace(self._step(state, metrics, images, labels, self.mean, self.std, step_key, aux))
            on_step()
        return state, metrics

    def evaluate(self, variables, split: str, with_noise: bool = True) -> dict:
        sums, pace = None, parallel.Pacer()
        for host_batch in self.dataset.split(split).batches(self.config.eval_batch_size):
            sums = pace(self._eval(sums, variables, *self._put(host_batch), self.mean, self.std))
        return parallel.to_host(sums)
