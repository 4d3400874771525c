"""Evaluating a model along many lines: one compiled function over fixed-size chunks.

Per chunk of C lines, everything happens on the device in one jitted call: gather the start
images, standardize (uint8 input), form each line's vector D (pair, direction table, seeded
random, or loss gradient), lay out the C x N points of the sampling convention, run
`apply_fn` in micro-batches of the forward batch (`layout`), and reduce to the statistics of
`spectrum.line_statistics`. Lines are split over the mesh's `data` axis. The per-line inputs
of a part (many chunks) go to the device once and each call picks its chunk by index, so
every call has the same shapes and the function compiles once, for all chunks, parts and
checkpoints. Stacked checkpoints (a leading axis on every variable) run under `jax.vmap`.
Parts are fetched to the host as they finish while the next part computes: memory stays
flat in the number of lines (per-point logits only when asked for).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from spectral_jax import parallel
from spectral_jax.data import standardize
from spectral_jax.errors import ConfigError
from spectral_jax.spectral import directions as directions_lib
from spectral_jax.spectral import layout, spectrum
from spectral_jax.spectral.lines import Lines, check_indices, pair_lines

ApplyFn = Callable[[Any, jax.Array], jax.Array]
PART_LINES = 4096  # lines fetched to the host at once (and, in `analyze`, flushed to disk)
_LINE_FIELDS = ("start", "target", "lo", "hi", "line_id", "cls")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """What is computed along each line (docs/analysis.md)."""

    sampling: str = "count"  # count | distance | reference
    num_points: int = 64  # points per line (count, reference)
    step: float = 1.0  # distance sampling: standardized units between points
    max_points: int = 1024  # distance sampling: the most points a line may have
    signal: str = "prob_distance"
    hf_cutoff: float = 0.0  # 0: the convention's default
    hf_cutoff_unit: str = ""  # cycles_per_line | bins | cycles_per_unit; '': the convention's default
    estimator: str = "cubic"  # cubic | linear | hann (spectrum.detrend)
    save_logits: bool = True

    def __post_init__(self):
        spectrum.resolve_cutoff(self.sampling, self.hf_cutoff, self.hf_cutoff_unit, self.estimator)  # validates
        spectrum.check_choice("signal", self.signal, spectrum.SIGNALS)
        if self.num_points < 8:
            raise ConfigError(f"num_points must be >= 8, got {self.num_points}.")
        if self.sampling != "distance":
            spectrum.check_resolved(self.num_points, self.sampling, self.hf_cutoff, self.hf_cutoff_unit, self.estimator)
        if not self.step > 0:
            raise ConfigError(f"step (distance sampling) must be > 0 standardized units, got {self.step}.")

    def padded_points(self, lengths: np.ndarray) -> int:
        """Points N per line: `num_points`, or in distance sampling the most points any line has
        (`distance_points`), rounded up to a multiple of 8 so that nearby lengths share a compile."""
        if self.sampling != "distance":
            return self.num_points
        most = int(np.max(distance_points(np.asarray(lengths, np.float32), self.step, np)))
        if most > self.max_points:
            raise ConfigError(f"distance sampling: the longest line ({float(np.max(lengths)):.4g} units) needs "
                              f"{most} points at step {self.step:g}, more than analysis.max_points="
                              f"{self.max_points}; raise the step or max_points.")
        return max(8, -(-most // 8) * 8)


def distance_points(length, step: float, xp=jnp):
    """Points of a line of length L sampled every `step` s from its start, its end included
    when L is a whole number of steps: floor(L/s * (1 + 1e-5)) + 1, in float32. The relative
    tolerance keeps the last point of a line whose float32 length falls a few ulps short of a
    whole number of steps (a norm of 1 - 1e-7); a point at most 1e-5 L beyond the end is taken.
    One rule for the device's count (`xp=jnp`) and the host's padding (`xp=np`)."""
    ratio = xp.asarray(length, xp.float32) / xp.float32(step) * xp.float32(1 + 1e-5)
    return xp.floor(ratio).astype(xp.int32) + 1


class LineEvaluator:
    """`LineEvaluator(apply_fn, num_points, ...)(variables, images, lines, mean, std)`.

    Keep one evaluator per model to reuse its compiled chunk function across checkpoints and
    runs. `trace_count` counts how often a chunk function was traced (compiled).
    """

    def __init__(self, apply_fn: ApplyFn, num_points: int = 64, chunk_lines: int = 0, sampling: str = "count",
                 mesh: Mesh | None = None, *, forward_batch: int = 0, seed: int = 0, **settings):
        self.apply_fn = apply_fn
        self.settings = Sampling(sampling=sampling, num_points=num_points, **settings)
        # With a mesh, each chunk's lines are split over the `data` axis (a multiple of its size).
        self.mesh = mesh if mesh is not None and mesh.size > 1 else None
        self.devices = self.mesh.size if self.mesh is not None else 1
        self.chunk_lines, self.forward_batch, self.seed = chunk_lines, forward_batch, seed
        self.trace_count = 0
        self._compiled: dict[tuple, Callable] = {}

    @property
    def num_points(self) -> int:
        return self.settings.num_points

    def layout(self, variables, point_shape, n_fft: int, stacked: bool = False) -> tuple[int, int]:
        """(lines per chunk, global forward batch); the forward batch is measured when neither is set."""
        fb = self.forward_batch
        if not fb and not self.chunk_lines:
            one = jax.tree.map(lambda x: x[0], variables) if stacked else variables
            fb = layout.tune_forward_batch(self.apply_fn, one, point_shape)
            self.forward_batch = fb
        return layout.chunk_layout(n_fft, self.devices, self.chunk_lines, fb)

    # ----------------------------------------------------------------------------------
    def __call__(self, variables, images: jax.Array, lines: Lines | np.ndarray, mean=None, std=None, *,
                 directions=None, stacked: bool = False) -> dict[str, np.ndarray]:
        """Statistics of every line.

        Args:
          variables: the model's variables (anything `apply_fn` takes); with `stacked`, every
            leaf has a leading checkpoint axis G and every output gains it too ([G, P, ...]).
          images: the table of start (and end) images: uint8 [N, *S] (then give `mean`/`std`,
            in [0,1] pixel units, per channel) or standardized float [N, *S].
          lines: `Lines`, or int [P, 2] pair indices into `images`.
          directions: float [D, *S] unit directions for `Lines.vector == "table"`.
        Returns numpy arrays with leading dimension P (see `spectrum.line_statistics`), plus
        `logits` [P, N, K] when saved, `length` [P] (standardized units) and `n_points` [P].
        """
        return self.evaluate(self.prepare(variables, images, lines, mean, std, directions=directions, stacked=stacked))

    def evaluate(self, prepared: "Prepared") -> dict[str, np.ndarray]:
        """Every part of `prepare`'s result, concatenated on the host."""
        parts = [out for _, out in self.parts(prepared)]
        axis = 1 if prepared.stacked else 0
        return {k: np.concatenate([p[k] for p in parts], axis=axis) for k in parts[0]}

    def prepare(self, variables, images, lines, mean=None, std=None, *, directions=None,
                stacked: bool = False, part_lines: int = PART_LINES) -> "Prepared":
        """Checks the inputs and fixes the layout; `parts(prepared)` then computes."""
        if not isinstance(lines, Lines):
            lines = pair_lines(lines)
        if len(lines) == 0:
            raise ConfigError("No lines to evaluate.")
        images = images if isinstance(images, jax.Array) else np.asarray(images)
        if (images.dtype == jnp.uint8) != (mean is not None):
            raise ConfigError("Give mean and std exactly when images are uint8 (they are standardized on device).")
        point_shape = tuple(images.shape[1:])
        check_indices(lines.start, images.shape[0], "line start indices")
        if lines.vector == "pair":
            check_indices(lines.target, images.shape[0], "pair indices")
        if lines.vector == "table":
            if directions is None:
                raise ConfigError("These lines need a direction table (directions=...).")
            directions = directions_lib.custom_directions(directions, point_shape, len(lines))
            check_indices(lines.target, len(directions), "direction indices")
        else:
            directions = None
        if mean is not None:
            mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
        if self.mesh is not None:
            images = parallel.put_replicated(images, self.mesh)
        else:
            images = jnp.asarray(images)
        lengths = self.lengths(images, lines, mean, std)
        n_fft = self.settings.padded_points(lengths)
        chunk, batch = self.layout(variables, point_shape, n_fft, stacked)
        part = max(chunk, part_lines // chunk * chunk)
        return Prepared(variables, images, mean, std, None if directions is None else jnp.asarray(directions),
                        lines, n_fft, chunk, batch, part, stacked)

    def lengths(self, images, lines: Lines, mean, std) -> np.ndarray:
        """Line lengths ||x_1 - x_0|| (pairs, computed on device in chunks) or hi - lo (unit
        directions; in float32, as on the device, so both count the same points)."""
        if lines.vector != "pair":
            return lines.hi.astype(np.float32) - lines.lo.astype(np.float32)
        fn = jax.jit(lambda a, b: jnp.linalg.norm(_difference(images[b], images[a], std).reshape(a.shape[0], -1),
                                                  axis=1))
        out, step = [], 1024
        for i in range(0, len(lines), step):  # np.asarray waits for each result: one in flight
            a, b = _pad(lines.start[i:i + step], step), _pad(lines.target[i:i + step], step)
            out.append(np.asarray(fn(a, b))[: min(step, len(lines) - i)])
        return np.concatenate(out) * (lines.hi - lines.lo)

    def parts(self, prepared: "Prepared", skip: set[int] = frozenset()) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Yields (part index, host results of its lines) in order, skipping `skip`; part k+1 is
        dispatched before part k is fetched, so the device never waits for the host."""
        pending = None
        for k in range(prepared.num_parts):
            if k in skip:
                continue
            launched = (k, self._launch(prepared, k))
            if pending is not None:
                yield pending[0], _fetch(*pending[1])
            pending = launched
        if pending is not None:
            yield pending[0], _fetch(*pending[1])

    @staticmethod
    def _fields(p: "Prepared", lo: int, hi: int) -> dict[str, np.ndarray]:
        """The per-line arrays of lines lo..hi that a chunk program reads."""
        return {"start": p.lines.start[lo:hi], "target": p.lines.target[lo:hi], "lo": p.lines.lo[lo:hi],
                "hi": p.lines.hi[lo:hi], "line_id": np.arange(lo, hi, dtype=np.int32), "cls": p.lines.classes[lo:hi]}

    def _launch(self, p: "Prepared", k: int):
        lo, hi = k * p.part_lines, min((k + 1) * p.part_lines, len(p.lines))
        fields = self._fields(p, lo, hi)
        chunks = p.part_lines // p.chunk_lines
        host = {name: _pad(v, p.part_lines).reshape(chunks, p.chunk_lines) for name, v in fields.items()}
        device = jax.device_put(host) if self.mesh is None else parallel.put_replicated(host, self.mesh)
        fn, pace = self._function(p), parallel.Pacer()
        used = -(-(hi - lo) // p.chunk_lines)
        results = [pace(fn(p.variables, p.images, p.mean, p.std, p.directions, device, jnp.int32(i)))
                   for i in range(used)]
        return results, hi - lo, 1 if p.stacked else 0

    def work_bytes(self, p: "Prepared") -> int:
        """Device memory one checkpoint's analysis needs beyond its inputs: the chunk program's
        temporaries (XLA's memory analysis of the compiled program; compiles it) and the results
        of every chunk of the two parts in flight (`parts` launches one before fetching the last)."""
        one = dataclasses.replace(p, stacked=False)
        part = {name: jax.ShapeDtypeStruct((1, p.chunk_lines), np.asarray(v).dtype)
                for name, v in self._fields(p, 0, 0).items()}
        compiled = self._function(one).lower(p.variables, p.images, p.mean, p.std, p.directions, part,
                                             jnp.int32(0)).compile()
        stats = compiled.memory_analysis()
        if stats is None:
            return 0
        chunks_in_flight = 2 * -(-min(p.part_lines, len(p.lines)) // p.chunk_lines)
        return int(stats.temp_size_in_bytes + chunks_in_flight * stats.output_size_in_bytes)

    def _function(self, p: "Prepared") -> Callable:
        key = (p.lines.vector, p.n_fft, p.chunk_lines, p.forward_batch, p.stacked, p.mean is None)
        if key not in self._compiled:
            chunk = _ChunkFunction(self, p.lines.vector, p.n_fft, p.forward_batch)
            fn = jax.vmap(chunk, in_axes=(0,) + (None,) * 6) if p.stacked else chunk
            self._compiled[key] = jax.jit(fn)
        return self._compiled[key]


@dataclasses.dataclass(frozen=True)
class Prepared:
    variables: Any
    images: jax.Array
    mean: jax.Array | None
    std: jax.Array | None
    directions: jax.Array | None
    lines: Lines
    n_fft: int
    chunk_lines: int
    forward_batch: int
    part_lines: int
    stacked: bool

    @property
    def num_parts(self) -> int:
        return -(-len(self.lines) // self.part_lines)


class _ChunkFunction:
    """The traced body: (variables, images, mean, std, directions, part arrays, chunk index) -> stats."""

    def __init__(self, ev: LineEvaluator, vector: str, n_fft: int, forward_batch: int):
        self.ev, self.vector, self.n_fft, self.forward_batch = ev, vector, n_fft, forward_batch

    def __call__(self, variables, images, mean, std, directions, part, index):
        ev, s = self.ev, self.ev.settings
        ev.trace_count += 1  # runs only while tracing
        a = {name: jax.lax.dynamic_index_in_dim(v, index, keepdims=False) for name, v in part.items()}
        if ev.mesh is not None:
            a = jax.lax.with_sharding_constraint(a, parallel.batch_sharded(ev.mesh))
        x0 = _prep(images[a["start"]], mean, std)
        shape = x0.shape[1:]
        if self.vector == "pair":
            d = _difference(images[a["target"]], images[a["start"]], std)
        elif self.vector == "table":
            d = directions[a["target"]]
        elif self.vector == "random":
            d = directions_lib.random_directions(ev.seed, a["line_id"], shape)
        else:
            d = directions_lib.gradient_directions(ev.apply_fn, variables, x0, a["cls"])
        norm = jnp.linalg.norm(d.reshape(d.shape[0], -1), axis=1)
        n_fft, k = self.n_fft, jnp.arange(self.n_fft, dtype=jnp.float32)
        span = a["hi"] - a["lo"]
        if self.vector == "pair":  # D = x1 - x0: the line is ||D|| (hi - lo) long, t moves s/||D|| a step
            length, t_step = span * norm, s.step / jnp.where(norm > 0, norm, 1.0)
        else:  # unit D (a float32 norm of 1 - 1e-7 at worst): exactly hi - lo long; a zero gradient, 0
            length, t_step = jnp.where(norm > 0, span, 0.0), jnp.full_like(norm, s.step)
        if s.sampling == "distance":
            valid = jnp.clip(distance_points(length, s.step), 1, n_fft)
            t = a["lo"][:, None] + k[None] * t_step[:, None]
            spacing = jnp.full_like(norm, s.step)
        else:
            valid = jnp.full(norm.shape, n_fft, jnp.int32)
            t = a["lo"][:, None] + span[:, None] * spectrum.line_positions(n_fft, s.sampling)[None]
            spacing = length / (n_fft if s.sampling == "reference" else n_fft - 1)
        bshape = t.shape + (1,) * len(shape)
        points = x0[:, None] + t.reshape(bshape) * d[:, None]  # [C, N, *S]
        logits = self.forward(variables, points)
        stats = spectrum.line_statistics(logits, spacing, sampling=s.sampling, signal=s.signal, valid=valid,
                                         classes=a["cls"], hf_cutoff=s.hf_cutoff, hf_cutoff_unit=s.hf_cutoff_unit,
                                         estimator=s.estimator)
        stats["length"] = length
        stats["n_points"] = valid
        if s.save_logits:
            stats["logits"] = logits
        return stats

    def forward(self, variables, points):
        """apply_fn over [C, N, *S] points in micro-batches of the forward batch -> [C, N, K] float32."""
        ev = self.ev
        c, n, shape = points.shape[0], points.shape[1], points.shape[2:]
        b, nd = self.forward_batch, ev.devices
        m = c * n // b
        if m == 1:
            return ev.apply_fn(variables, points.reshape((c * n,) + shape)).reshape(c, n, -1).astype(jnp.float32)
        # Micro-batch j takes b/nd points from every device's block of lines, so each batch is
        # split over all devices like the chunk itself.
        x = jnp.swapaxes(points.reshape((nd, m, b // nd) + shape), 0, 1).reshape((m, b) + shape)

        def body(xb):
            if ev.mesh is not None:
                xb = jax.lax.with_sharding_constraint(xb, parallel.batch_sharded(ev.mesh))
            return ev.apply_fn(variables, xb).astype(jnp.float32)

        logits = jax.lax.map(body, x)  # [m, b, K]
        return jnp.swapaxes(logits.reshape(m, nd, b // nd, -1), 0, 1).reshape(c, n, -1)


def _prep(x: jax.Array, mean, std) -> jax.Array:
    return (x if mean is None else standardize(x, mean, std)).astype(jnp.float32)


def _difference(x1: jax.Array, x0: jax.Array, std) -> jax.Array:
    """Standardized x1 - x0, from the raw difference: equal images give exactly 0."""
    d = x1.astype(jnp.float32) - x0.astype(jnp.float32)
    return d if std is None else d / 255.0 / std


def _pad(v: np.ndarray, size: int) -> np.ndarray:
    """`v` padded to `size` by repeating its first entry (padded lines are computed and dropped)."""
    v = np.asarray(v)
    return np.concatenate([v, np.repeat(v[:1], size - len(v), axis=0)]) if len(v) < size else v


def _fetch(results: list[dict], count: int, axis: int) -> dict[str, np.ndarray]:
    merged = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=axis), *results)
    host = parallel.to_host(merged)
    return {k: np.take(v, np.arange(count), axis=axis) for k, v in host.items()}
