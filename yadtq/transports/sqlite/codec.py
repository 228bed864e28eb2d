"""How the SQLite backend stores a task record and a worker report: msgpack blobs in
``yadtq_tasks.record`` and ``yadtq_workers.info``."""

from __future__ import annotations

from dataclasses import fields

from ...envelope import pack, unpack
from ..base import ErrorInfo, TaskRecord, WorkerInfo


def _pack_record(record: TaskRecord) -> bytes:
    error = record.error
    return pack([
        record.state, record.name, record.queue, record.result,
        None if error is None else [error.type, error.message, error.args, error.traceback],
        record.retries, record.worker, record.eta, record.instance,
        [list(entry) for entry in record.history],
    ])


def _unpack_record(task_id: str, blob: bytes) -> TaskRecord:
    state, name, queue, result, error, retries, worker, eta, instance, history = unpack(blob)
    return TaskRecord(
        task_id=task_id, state=state, name=name, queue=queue, result=result,
        error=None if error is None else ErrorInfo(*error), retries=retries, worker=worker,
        eta=eta, instance=instance,
        history=tuple((entry[0], entry[1], entry[2]) for entry in history),
    )


_WORKER_FIELDS = frozenset(f.name for f in fields(WorkerInfo))


def _unpack_worker(blob: bytes) -> WorkerInfo:
    values = {k: v for k, v in unpack(blob).items() if k in _WORKER_FIELDS}
    values["queues"] = tuple(values.get("queues", ()))
    return WorkerInfo(**values)
