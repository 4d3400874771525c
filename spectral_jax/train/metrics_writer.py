"""Per-epoch metrics: WORKDIR/metrics.jsonl (always) and TensorBoard event files in
WORKDIR/tensorboard/ when the `tensorboard` package is installed (no TensorFlow needed).

Only the main process writes. metrics.jsonl is rewritten whole and atomically each epoch, so a
killed run never leaves a half line; on resume it is rebuilt from the records saved with the
restored checkpoint (`MetricsWriter.recover`).
"""

from __future__ import annotations

import numbers
import time
from pathlib import Path
from typing import Callable

from spectral_jax import io

METRICS = "metrics.jsonl"


class MetricsWriter:
    def __init__(self, workdir: str | Path, records: list[dict], enabled: bool = True):
        self.path = Path(workdir) / METRICS
        self.records = list(records)
        self.enabled = enabled
        self._tb = _tensorboard_writer(Path(workdir) / "tensorboard") if enabled else None

    def write(self, record: dict) -> None:
        self.records.append(record)
        if not self.enabled:
            return
        io.write_jsonl(self.path, self.records)
        if self._tb is not None:
            self._tb.write(record)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    @staticmethod
    def recover(workdir: str | Path, step: int, proven: list[dict], *, enabled: bool = True,
                log: Callable[[str], None] = print) -> list[dict]:
        """The records a run resumed at `step` goes on from, with metrics.jsonl rewritten to match.

        The records saved with the restored checkpoint (`proven`) are the truth; for checkpoints
        older than that, the lines of metrics.jsonl up to `step` that parse. Damaged lines,
        records past `step` (an epoch logged before its checkpoint landed: it is trained again)
        and missing records are said in one logged line."""
        path = Path(workdir) / METRICS
        on_disk, problems = io.parse_jsonl(path)
        kept = [r for r in on_disk if isinstance(r.get("step"), int) and r["step"] <= step]
        history = list(proven) if proven or not step else kept
        if on_disk == history and not problems:
            return history
        if enabled:
            notes = []
            if problems:
                notes.append(f"{len(problems)} damaged line(s), the first: {problems[0]}")
            if past := sum(1 for r in on_disk if isinstance(r.get("step"), int) and r["step"] > step):
                notes.append(f"{past} record(s) past step {step}, whose checkpoint was not written (trained again)")
            if missing := len(history) - len([r for r in on_disk if r in history]):
                notes.append(f"{missing} missing record(s)")
            notes = notes or ["records that differ from the checkpoint's"]
            source = f"the records saved with checkpoint {step}" if proven else f"its lines up to step {step}"
            log(f"{path}: {'; '.join(notes)}: rebuilt from {source} ({len(history)} record(s)).")
            io.write_jsonl(path, history)
        return history


class _TensorBoard:
    def __init__(self, logdir: Path):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        logdir.mkdir(parents=True, exist_ok=True)
        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self._writer = EventFileWriter(str(logdir))

    def write(self, record: dict) -> None:
        values = [self._summary.Value(tag=k, simple_value=float(v)) for k, v in record.items()
                  if isinstance(v, numbers.Real) and k not in ("epoch", "step")]
        self._writer.add_event(self._event(wall_time=time.time(), step=int(record["step"]),
                                           summary=self._summary(value=values)))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _tensorboard_writer(logdir: Path):
    try:
        return _TensorBoard(logdir)
    except ImportError:
        return None
