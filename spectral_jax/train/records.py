"""What a run logs: one metrics.jsonl record per epoch, and summary.json at the end.

Pure functions of host numbers (the device sums of an epoch, already copied back), so the
arithmetic of the log is testable without training anything.
"""

from __future__ import annotations

import math

from spectral_jax.data.noise import minimum_over_epochs

NOISE_SUMMARY_KEYS = ("oracle_noise_fitting", "oracle_uniform_noise_fitting", "train_oracle_noise_fitting",
                      "train_oracle_uniform_noise_fitting")


def train_record(m: dict, epoch: int, step: int, lr: float, train_seconds: float) -> dict:
    """The training part of epoch `epoch`'s record (1-based) from the step accumulators `m`
    (`step.zero_metrics` keys): mean loss and accuracy, training throughput, the mean l2 norms
    of the gradients and updates, and the parameters' norm at the end of the epoch."""
    steps = max(float(m["steps"]), 1.0)
    record = {"epoch": epoch, "step": step, "lr": lr,
              "train_loss": float(m["loss_sum"] / m["count"]), "train_acc": float(m["correct"] / m["count"]),
              "grad_norm": float(m["grad_norm_sum"]) / steps, "update_norm": float(m["update_norm_sum"]) / steps,
              "param_norm": float(m["param_norm"]),
              "images_per_second": float(m["count"]) / train_seconds if train_seconds > 0 else 0.0}
    if m["max_eps"] > 0:
        record["max_epsilon"] = float(m["max_eps"])
    return record


def eval_record(s: dict, name: str, noise_prefix: str | None = None) -> dict:
    """Means of evaluation sums `s` (`step.make_eval_terms` keys): `{name}_loss`, `{name}_acc` and,
    when `s` holds noise terms and `noise_prefix` is given, the noise-fitting keys with that prefix
    (`clean_loss`, `noisy_loss`, `noise_fitting`, the two oracles; and `class_...` for a class)."""
    n = float(s["count"])
    out = {f"{name}_loss": float(s["loss"]) / n, f"{name}_acc": float(s["correct"]) / n}
    if noise_prefix is None or "noisy" not in s:
        return out
    out.update(_noise_keys(noise_prefix, s, ""))
    if "class_count" in s:
        out.update(_noise_keys(noise_prefix + "class_", s, "class_"))
    return out


def _noise_keys(name: str, s: dict, src: str) -> dict:
    n = max(float(s[f"{src}count"]), 1.0)
    clean, noisy = float(s[f"{src}loss"]) / n, float(s[f"{src}noisy"]) / n
    return {f"{name}clean_loss": clean, f"{name}noisy_loss": noisy, f"{name}noise_fitting": clean - noisy,
            f"{name}oracle_noise_fitting": float(s[f"{src}oracle"]) / n,
            f"{name}oracle_uniform_noise_fitting": float(s[f"{src}oracle_uniform"]) / n}


def effective_robustness(acc_extra: float, acc_test: float) -> float:
    """ER = acc_10.1 - sigmoid(0.8318 logit(acc_10) - 0.4736) (docs/methods.md §4)."""
    a = min(max(acc_test, 1e-6), 1 - 1e-6)
    z = 0.8318 * math.log(a / (1 - a)) - 0.4736
    return acc_extra - 1.0 / (1.0 + math.exp(-z))


def early_stop_reason(config, record: dict) -> str:
    """Why training stops after this epoch ('' = it goes on)."""
    if config.max_accuracy > 0 and record["test_acc"] >= config.max_accuracy:
        return f"test accuracy {record['test_acc']:.4f} >= max_accuracy {config.max_accuracy}"
    if config.min_loss > 0 and record["train_loss"] <= config.min_loss:
        return f"training loss {record['train_loss']:.4f} <= min_loss {config.min_loss}"
    return ""


def run_summary(config, records: list[dict], total_steps: int, noise_info: dict, stopped_early: str) -> dict:
    """summary.json: the final figures of a run, and for noise runs the minimum of noise fitting
    over epochs (overall and after the burn-in) with its epoch."""
    last = records[-1]
    summary = {
        "final_test_acc": last["test_acc"], "final_test_loss": last["test_loss"],
        "final_train_acc": last["train_acc"], "final_train_loss": last["train_loss"],
        "last_step": last["step"], "epochs_done": last["epoch"], "total_steps": total_steps,
        "stopped_early": stopped_early, "train_seconds": float(sum(r["seconds"] for r in records)),
    }
    if "effective_robustness" in last:
        summary.update(final_extra_acc=last["extra_acc"], final_effective_robustness=last["effective_robustness"])
    if "noise_fitting" in last:
        value, epoch = minimum_over_epochs(records)
        burn_value, burn_epoch = minimum_over_epochs(records, after_epoch=config.noise.min_after_epoch)
        summary.update(
            min_noise_fitting=value, min_noise_fitting_epoch=epoch,
            min_noise_fitting_after_burn_in=burn_value, min_noise_fitting_after_burn_in_epoch=burn_epoch,
            final_noise_fitting=last["noise_fitting"], final_train_noise_fitting=last["train_noise_fitting"],
            max_epsilon=max(r.get("max_epsilon", 0.0) for r in records),
            **{k: last[k] for k in NOISE_SUMMARY_KEYS}, **noise_info,
        )
    return summary
