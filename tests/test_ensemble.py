"""Ensembles in one program: K members under jax.vmap equal K separate trainings."""

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax import models
from spectral_jax.train import optimizer as optimizer_lib
from spectral_jax.train import step as step_lib


def test_vmapped_steps_equal_separate_steps(digits, smoke_config):
    """Two members with their own seed (init, data order, randomness), lr and weight decay."""
    spe, total = 44, 88
    members = []
    for seed, lr, wd in ((0, 0.05, 5e-4), (1, 0.2, 1e-3)):
        c = smoke_config.copy_and_resolve_references()
        c.seed, c.lr, c.weight_decay = seed, lr, wd
        members.append(c)
    model, _ = models.create_model(members[0], digits.image_shape, 10)
    data = step_lib.DeviceSplit.put(digits.split("train"), digits.mean, digits.std)
    perm_fn = step_lib.make_epoch_permutation(spe, len(digits.split("train")))
    single = step_lib.make_train_step(model, smoke_config, 10, total, spe)
    states, keys, data_keys, hypers = [], [], [], []
    for c in members:
        root = jax.random.key(c.seed)
        variables = models.create_model(c, digits.image_shape, 10, jax.random.fold_in(root, 0))[1]
        states.append(step_lib.init_state(variables, optimizer_lib.make_optimizer(c, total)[0]))
        data_keys.append(jax.random.fold_in(root, 1))
        keys.append(jax.random.fold_in(root, 2))
        hypers.append(step_lib.hyperparameters(c))

    stack = lambda xs: jax.tree.map(lambda *x: jnp.stack(x), *xs)  # noqa: E731
    stacked = stack(states)  # before the single steps donate the states
    want = []
    for state, data_key, key, hyper in zip(states, data_keys, keys, hypers):
        metrics = step_lib.zero_metrics()
        for _ in range(3):
            state, metrics = single(state, metrics, data, perm_fn(data_key, state["step"]), key, {"hyper": hyper})
        want.append((state, metrics))

    ensemble = step_lib.make_train_step(model, smoke_config, 10, total, spe, members=2)
    perms = step_lib.make_epoch_permutation(spe, len(digits.split("train")), members=2)
    state, metrics = stacked, stack([step_lib.zero_metrics()] * 2)
    data_keys, keys = jnp.stack(data_keys), jnp.stack(keys)
    for _ in range(3):
        state, metrics = ensemble(state, metrics, data, perms(data_keys, state["step"]), keys, {"hyper": stack(hypers)})
    for i, (w_state, w_metrics) in enumerate(want):
        got = jax.tree.map(lambda x: x[i], (state, metrics))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), got, (w_state, w_metrics))
    assert not np.allclose(state["params"]["head"]["kernel"][0], state["params"]["head"]["kernel"][1])
