"""The model zoo (docs/methods.md §3): exact parameter counts, zero-initialized heads, Shake-Shake
and ShakeDrop mixing (forward alpha, gradient beta, expectation in evaluation), a jitted
train step per model, bfloat16 compute, input shapes, and the `spectral-jax models` table.

The per-model tests compile a train step of every registry model on 2 images of 8x8x3, with
XLA's backend optimizations off for that compilation only: PyramidNet-272 has ~900 conv
ops in its train step, and optimizing them costs more than the step itself.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spectral_jax import cli, models
from spectral_jax.config import ConfigError, base_config, validate
from spectral_jax.models import layers, norm, pyramidnet, shake, shake_shake, summary

# docs/methods.md §3 (CIFAR-10: 32x32x3, 10 classes); resnet18 is the usual CIFAR ResNet-18 count.
PAPER_PARAMS = {
    "wrn_32": 1_553_626,
    "wrn_160": 38_547_674,
    "shake_shake_32": 2_923_162,
    "shake_shake_96": 26_192_922,
    "shake_shake_112": 35_640_442,
    "pyramid_net": 26_210_842,
    "resnet18": 11_173_962,
}
ALL_MODELS = ["cnn", "mlp", "pyramid_net", "resnet18", "shake_shake_112", "shake_shake_32", "shake_shake_96",
              "wrn", "wrn_160", "wrn_32"]
SMALL = (8, 8, 3)
# Per-compilation XLA options: the same switches as jax_disable_most_optimizations, plus the
# CPU's simpler fusion emitters; together they halve PyramidNet's train-step compile time.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                "xla_cpu_use_fusion_emitters": False}


def make_config(name: str, dtype: str = "float32"):
    config = base_config()
    config.model, config.dtype = name, dtype
    return config


@functools.lru_cache(maxsize=None)
def abstract_model(name: str, dtype: str = "float32", shape: tuple[int, int, int] = SMALL, num_classes: int = 10):
    """(PureModel, abstract variables), built once per argument tuple (PyramidNet takes ~2 s)."""
    return models.create_model(make_config(name, dtype), shape, num_classes)


def test_registry_lists_the_zoo():
    assert models.model_names() == sorted(ALL_MODELS)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_counts_match_the_paper(name):
    _, variables = abstract_model(name, shape=(32, 32, 3))  # abstract: no init compute
    assert models.count_params(variables) == PAPER_PARAMS[name]


def test_generic_wrn_reads_depth_and_width_from_config():
    config = make_config("wrn")
    _, variables = models.create_model(config, (32, 32, 3), 10)
    assert models.count_params(variables) == PAPER_PARAMS["wrn_32"]  # default 28-2
    config.wrn.widen_factor = 10
    _, variables = models.create_model(config, (32, 32, 3), 10)
    assert models.count_params(variables) == PAPER_PARAMS["wrn_160"]
    config.wrn.depth, config.wrn.widen_factor = 10, 1  # one block per stage, 16 -> 16 -> 32 -> 64
    _, variables = models.create_model(config, (32, 32, 3), 10)
    stem, head = 27 * 16, 2 * 64 + 64 * 10 + 10

    def block(c_in, c_out):
        projection = 9 * c_in * c_out if c_in != c_out else 0
        return 2 * c_in + 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + projection

    assert models.count_params(variables) == stem + block(16, 16) + block(16, 32) + block(32, 64) + head


@pytest.mark.parametrize("depth, widen", [(15, 2), (4, 2), (28, 0)])
def test_bad_wrn_config_is_a_clear_error(depth, widen):
    config = make_config("wrn")
    config.wrn.depth, config.wrn.widen_factor = depth, widen
    with pytest.raises(ConfigError, match="wrn"):
        validate(config)


def test_pyramid_net_widths_and_survival_follow_the_spec():
    widths = pyramidnet.bottleneck_widths()
    assert len(widths) == 90 and widths[:3] == [18, 20, 23] and widths[-1] == 216
    survival = pyramidnet.survival_probabilities(90)
    assert survival[0] == pytest.approx(1 - 0.5 / 90) and survival[-1] == pytest.approx(0.5)


@pytest.mark.parametrize("shape", [(8, 8, 1), (7, 9, 3), (224, 224, 3)])  # digits, odd sizes, ImageNet
def test_every_model_maps_any_image_shape_to_logits(shape):
    x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    for name in ALL_MODELS:
        model, variables = abstract_model(name, shape=shape)
        logits = jax.eval_shape(model.apply_fn, variables, x)
        assert (logits.shape, logits.dtype) == ((2, 10), jnp.float32), name


def test_bfloat16_compute_keeps_float32_parameters():
    for name in ALL_MODELS:
        _, variables = abstract_model(name, "bfloat16")
        assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}, name


# --------------------------------------------------------------------------------------
# Initialization


def test_he_normal_is_untruncated_fan_in_and_the_same_under_jit():
    key, shape = jax.random.key(3), (3, 3, 64, 128)
    eager = np.asarray(layers.he_normal(key, shape))
    traced = np.asarray(jax.jit(lambda k: layers.he_normal(k, shape))(key))
    np.testing.assert_array_equal(eager, traced)
    std = math.sqrt(2.0 / (3 * 3 * 64))
    assert eager.shape == shape and eager.std() == pytest.approx(std, rel=0.01)
    assert abs(eager.mean()) < 0.01 * std
    assert np.abs(eager).max() > 3.5 * std  # a truncated normal (flax's default) stops at 2 std


def test_batch_norm_matches_flax_batch_norm_in_value_gradient_and_running_stats():
    x = jax.random.normal(jax.random.key(0), (4, 5, 5, 3)) * 3 + 1
    ours = norm.BatchNorm(3, momentum=0.9, epsilon=1e-5)
    theirs = nnx.BatchNorm(3, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
    for bn in (ours, theirs):
        bn.scale[...], bn.bias[...] = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.1, 0.2, 0.3])
    weights = jax.random.normal(jax.random.key(1), x.shape)

    def input_grad(bn):
        graphdef, state = nnx.split(bn)

        def loss(x):
            return jnp.sum(weights * jnp.square(nnx.merge(graphdef, state, copy=True)(x, use_running_average=False)))

        return jax.grad(loss)(x)

    np.testing.assert_allclose(input_grad(ours), input_grad(theirs), atol=1e-5)
    grads = [nnx.grad(lambda bn: jnp.sum(weights * bn(x, use_running_average=False)))(bn) for bn in (ours, theirs)]
    for name in ("scale", "bias"):
        np.testing.assert_allclose(grads[0][name][...], grads[1][name][...], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours(x, use_running_average=False), theirs(x, use_running_average=False), atol=1e-5)
    np.testing.assert_allclose(ours.mean[...], theirs.mean[...], atol=1e-6)  # after two updates
    np.testing.assert_allclose(ours.var[...], theirs.var[...], atol=1e-5)
    np.testing.assert_allclose(ours(x, use_running_average=True), theirs(x, use_running_average=True), atol=1e-5)


# --------------------------------------------------------------------------------------
# Shake-Shake and ShakeDrop


def test_shake_forward_uses_alpha_and_gradient_uses_beta():
    x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
    alpha = jnp.array([0.2, 0.7, -0.5]).reshape(3, 1, 1, 1)
    beta = jnp.array([0.9, 0.1, 0.4]).reshape(3, 1, 1, 1)
    weights = jax.random.normal(jax.random.key(1), x.shape)
    np.testing.assert_array_equal(shake.shake(x, alpha, beta), x * alpha)
    grad = jax.grad(lambda x: jnp.sum(weights * shake.shake(x, alpha, beta)))(x)
    np.testing.assert_allclose(grad, weights * beta, rtol=1e-6)  # d/dx sum(w * x * beta) = w * beta
    assert not np.allclose(grad, weights * alpha)


def test_shake_shake_coefficients_are_normalized_uniforms_per_block_branch_and_example():
    forward, backward = shake.shake_shake_coefficients(jax.random.key(0), 12, 5000)
    for w in (forward, backward):
        assert w.shape == (12, 2, 5000, 1, 1, 1)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
        assert float(w.min()) > 0 and float(w.mean()) == pytest.approx(0.5, abs=1e-6)
    assert not np.allclose(forward, backward)  # independent forward and backward draws
    assert not np.allclose(forward[0], forward[1])  # and independent blocks
    again = shake.shake_shake_coefficients(jax.random.key(0), 12, 5000)
    np.testing.assert_array_equal(again[0], forward)


def test_shakedrop_coefficients_follow_gate_alpha_beta():
    survival = [1.0, 0.0, 0.7]
    forward, backward = shake.shakedrop_coefficients(jax.random.key(0), survival, 20000)
    assert forward.shape == backward.shape == (3, 20000, 1, 1, 1)
    np.testing.assert_array_equal(forward[0], 1.0)  # always kept: identity both ways
    np.testing.assert_array_equal(backward[0], 1.0)
    assert float(forward[1].min()) >= -1 and float(forward[1].max()) < 1  # dropped: alpha ~ U(-1, 1)
    assert float(backward[1].min()) >= 0 and float(backward[1].max()) < 1  # beta ~ U(0, 1)
    assert float(forward[1].mean()) == pytest.approx(0.0, abs=0.02)
    for p, f in zip(survival, forward):  # E[forward] = p, the evaluation-mode scale
        assert float(f.mean()) == pytest.approx(shake.shakedrop_expectation(p), abs=0.02)
    kept = np.asarray(forward[2] == 1.0).mean()  # b = 1 (alpha = 1 has probability 0)
    assert kept == pytest.approx(0.7, abs=0.02)


def _bias_grads(module, x, coefficients, weights) -> dict:
    """d sum(weights * module(x, train=True)) / d params, as nested dicts."""
    grads = nnx.grad(lambda m: jnp.sum(weights * m(x, train=True, coefficients=coefficients)))(module)
    return nnx.to_pure_dict(grads)


def test_shake_shake_block_mixes_branches_with_alpha_forward_beta_backward_and_half_in_eval():
    block = shake_shake.ShakeShakeBlock(4, 8, 2, dtype=jnp.float32, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (3, 6, 6, 4))
    forward, backward = shake.shake_shake_coefficients(jax.random.key(1), 1, 3)
    forward, backward = forward[0], backward[0]  # [2 branches, B, 1, 1, 1]
    weights = jax.random.normal(jax.random.key(2), (3, 3, 3, 8))

    @nnx.jit  # one compilation instead of one per eager op
    def run(block):
        out = {"eval": block(x, train=False, coefficients=None), "skip_eval": block.skip(x, train=False),
               "branches_eval": [b(x, train=False) for b in block.branches]}
        out["train"] = block(x, train=True, coefficients=(forward, backward))
        out["skip_train"] = block.skip(x, train=True)
        out["branches_train"] = [b(x, train=True) for b in block.branches]
        out["grads"] = _bias_grads(block, x, (forward, backward), weights)
        return out

    out = run(block)
    b0, b1 = out["branches_eval"]
    np.testing.assert_allclose(out["eval"], out["skip_eval"] + 0.5 * b0 + 0.5 * b1, atol=1e-5)
    b0, b1 = out["branches_train"]
    np.testing.assert_allclose(out["train"], out["skip_train"] + forward[0] * b0 + forward[1] * b1, atol=1e-5)
    # The last BN's shift enters a branch output additively, so the gradient of
    # sum(w * out) w.r.t. branch i's bn2.bias is sum over (b, h, w) of w * beta_i[b].
    for i in range(2):
        expected = jnp.sum(weights * backward[i], axis=(0, 1, 2))
        np.testing.assert_allclose(out["grads"]["branches"][i]["bn2"]["bias"], expected, rtol=1e-5, atol=1e-5)
        assert not np.allclose(expected, jnp.sum(weights * forward[i], axis=(0, 1, 2)))


def test_shakedrop_bottleneck_scales_by_survival_in_eval_and_uses_beta_backward():
    block = pyramidnet.Bottleneck(8, 4, 2, 0.6, dtype=jnp.float32, rngs=nnx.Rngs(0))  # 8 -> 16 channels
    x = jax.random.normal(jax.random.key(0), (3, 6, 6, 8))
    forward, backward = shake.shakedrop_coefficients(jax.random.key(1), [0.6], 3)
    coefficients = (forward[0], backward[0])
    weights = jax.random.normal(jax.random.key(2), (3, 3, 3, 16))

    @nnx.jit
    def run(block):
        out = {"eval": block(x, train=False, coefficients=None), "branch_eval": block.branch(x, train=False),
               "shortcut": block.shortcut(x)}
        out["train"] = block(x, train=True, coefficients=coefficients)
        out["branch_train"] = block.branch(x, train=True)
        out["grads"] = _bias_grads(block, x, coefficients, weights)
        return out

    out = run(block)
    shortcut = out["shortcut"]
    assert shortcut.shape == (3, 3, 3, 16) and float(jnp.abs(shortcut[..., 8:]).max()) == 0.0
    np.testing.assert_allclose(out["eval"], shortcut + 0.6 * out["branch_eval"], atol=1e-5)
    np.testing.assert_allclose(out["train"], shortcut + forward[0] * out["branch_train"], atol=1e-5)
    np.testing.assert_allclose(out["grads"]["bn3"]["bias"], jnp.sum(weights * backward[0], axis=(0, 1, 2)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["shake_shake_32", "pyramid_net"])
def test_stochastic_models_need_a_key_in_training(name):
    model, variables = abstract_model(name)
    x = jax.ShapeDtypeStruct((2, *SMALL), jnp.float32)
    with pytest.raises(ValueError, match="key"):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=True, key=None), variables, x)


def test_shake_shake_training_forward_is_a_function_of_the_key():
    module = shake_shake.ShakeShake(3, 10, widen_factor=1, dtype=jnp.float32, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(module)
    x = jax.random.normal(jax.random.key(0), (2, *SMALL))

    @jax.jit
    def features(key):  # the pooled features (the zero head would hide every difference)
        m = nnx.merge(graphdef, state, copy=True)
        shake.check_key(key, True, "test")
        coefficients = list(zip(*shake.shake_shake_coefficients(key, len(m.blocks), 2)))
        h = m.stem_bn(m.stem(x), use_running_average=False)
        for block, c in zip(m.blocks, coefficients):
            h = block(h, train=True, coefficients=c)
        return h

    a, b, c = features(jax.random.key(1)), features(jax.random.key(1)), features(jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# --------------------------------------------------------------------------------------
# Every registry model: zero head, first-step loss ln(10), a jitted train step, bfloat16


@pytest.fixture(scope="module", params=ALL_MODELS)
def initialized(request):
    """(name, PureModel, variables) of a real initialization at 8x8x3, 10 classes."""
    name = request.param
    model, variables = models.create_model(make_config(name), SMALL, 10, jax.random.key(0))
    return name, model, variables


def sgd_train_step(model, num_classes: int = 10, lr: float = 0.1):
    def step(variables, images, labels, key):
        def loss_fn(params):
            logits, batch_stats = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                              images, train=True, key=key)
            return optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, num_classes)).mean(), batch_stats

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        params = jax.tree.map(lambda p, g: p - lr * g, variables["params"], grads)
        return {"params": params, "batch_stats": batch_stats}, loss

    return step


def test_zero_head_first_loss_ln10_and_a_jitted_train_step(initialized):
    name, model, variables = initialized
    head = variables["params"]["head"]  # every model names its classifier `head`
    assert not np.any(head["kernel"]) and not np.any(head["bias"])

    images = jax.random.normal(jax.random.key(1), (2, *SMALL))
    labels = jnp.array([3, 7])
    step = jax.jit(sgd_train_step(model)).lower(variables, images, labels, jax.random.key(2)).compile(FAST_COMPILE)
    after, loss = step(variables, images, labels, jax.random.key(2))
    assert float(loss) == pytest.approx(math.log(10), abs=1e-6)  # zero head: logits are exactly 0
    _, again = step(variables, images, labels, jax.random.key(2))
    assert float(again) == float(loss)  # a step is a pure function of (variables, batch, key)
    _, second = step(after, images, labels, jax.random.key(3))
    assert np.isfinite(float(second))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(after))
    assert np.any(after["params"]["head"]["kernel"])  # the head learned
    if variables["batch_stats"]:  # running statistics moved
        assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(variables["batch_stats"]),
                                                             jax.tree.leaves(after["batch_stats"])))


def test_bfloat16_logits_are_close_to_float32(initialized):
    name, model, variables = initialized
    # A random head, so that the logits are not the trivial zeros of the initialization.
    params = dict(variables["params"])
    kernel = params["head"]["kernel"]
    params["head"] = {"kernel": jax.random.normal(jax.random.key(4), kernel.shape) / math.sqrt(kernel.shape[0]),
                      "bias": params["head"]["bias"]}
    v = {"params": params, "batch_stats": variables["batch_stats"]}
    model16, _ = abstract_model(name, "bfloat16")
    images = jax.random.normal(jax.random.key(5), (4, *SMALL))
    f32 = jax.jit(model.apply_fn).lower(v, images).compile(FAST_COMPILE)(v, images)
    bf16 = jax.jit(model16.apply_fn).lower(v, images).compile(FAST_COMPILE)(v, images)
    assert bf16.dtype == jnp.float32  # PureModel returns float32 logits
    scale = float(jnp.abs(f32).max())
    assert scale > 0.1
    assert float(jnp.abs(bf16 - f32).max()) <= 0.05 * scale, (name, float(jnp.abs(bf16 - f32).max()), scale)


# --------------------------------------------------------------------------------------
# `spectral-jax models`


def test_mlp_gflops_match_its_matrix_products():
    row = summary.model_row(base_config(), "mlp", (32, 32, 3), 10)
    macs = 3072 * 256 + 256 * 256 + 256 * 10
    assert row.params == 855_050
    assert row.gflops == pytest.approx(2 * macs / 1e9, rel=0.01)


def test_cli_models_prints_one_row(capsys):
    assert cli.main(["models", "--model", "wrn_32"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split() == ["model", "params", "GFLOPs/image"]
    name, params, gflops = lines[1].split()
    assert (name, params) == ("wrn_32", "1553626") and 0.3 < float(gflops) < 0.5

    assert cli.main(["models", "--model", "cnn", "--input_shape", "8,8,1", "--num_classes", "3"]) == 0
    name, params, _ = capsys.readouterr().out.strip().splitlines()[1].split()
    assert (name, int(params)) == ("cnn", 9 * 1 * 32 + 9 * 32 * 64 + 9 * 64 * 128 + 2 * (32 + 64 + 128) + 128 * 3 + 3)


def test_cli_models_unknown_name_lists_the_valid_ones(capsys):
    assert cli.main(["models", "--model", "wrn_99"]) == 2
    err = capsys.readouterr().err
    assert "wrn_99" in err and all(name in err for name in ALL_MODELS)
