"""Per-epoch metrics: WORKDIR/metrics.jsonl (always) and TensorBoard event files in
WORKDIR/tensorboard/ when the `tensorboard` package is installed (no TensorFlow needed).

Only the main process writes. metrics.jsonl is rewritten whole and atomically each epoch, so a
killed run never leaves a half line; on resume it is cut back to the restored checkpoint.
"""

from __future__ import annotations

import numbers
import time
from pathlib import Path

from spectral_jax import io


class MetricsWriter:
    def __init__(self, workdir: str | Path, records: list[dict], enabled: bool = True):
        self.path = Path(workdir) / "metrics.jsonl"
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
