"""Pick the torch device for the current Spark task (executor side only).

A task that Spark gave GPUs (`spark.task.resource.gpu.amount`) runs on `cuda:<address>` of the first one; more
than one is a misconfiguration we warn about (one encoder uses one GPU). Without a GPU, or when CUDA is absent on
a node that claims one, the task runs on CPU with torch threads capped to the task's cores, so concurrent tasks do
not oversubscribe the executor. The choice is logged once per process.
"""

from __future__ import annotations

import logging

import torch
from pyspark import TaskContext

log = logging.getLogger(__name__)
_LOGGED: set[str] = set()


class DriverCallError(RuntimeError):
    """An executor-only helper was called on the driver."""


def _log_once(message: str, *args: object) -> None:
    text = message % args
    if text not in _LOGGED:
        _LOGGED.add(text)
        log.warning(text) if "fall" in message else log.info(text)


def task_device() -> str:
    """`cuda:<n>` for the GPU Spark assigned to this task, else `cpu` (threads capped to the task's cores)."""
    return device_choice()[0]


def device_choice() -> tuple[str, str | None, str]:
    """(device, the GPU address Spark assigned this task or None, why): the choice `task_device` makes, with its
    reason, so a job can report per task which address it was given and what the encoder used."""
    context = TaskContext.get()
    if context is None:
        raise DriverCallError(
            "task_device() runs inside a Spark task (a pandas UDF); on the driver there is no task to take a GPU from"
        )
    gpu = context.resources().get("gpu")
    addresses = list(gpu.addresses) if gpu is not None else []
    address = addresses[0] if addresses else None
    if addresses:
        if len(addresses) > 1:
            _log_once("task got %d GPUs %s; the encoder uses only %s", len(addresses), addresses, address)
        if torch.cuda.is_available():
            device = f"cuda:{int(address)}"
            _log_once("encoder device %s (Spark GPU address %s)", device, address)
            return device, address, "assigned GPU"
        _log_once("Spark assigned GPU %s but CUDA is not available in this process; falling back to CPU", address)
        why = "CUDA not available; CPU fallback"
    else:
        why = "no GPU assigned"
    cores = max(1, context.cpus())
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    _log_once("encoder device cpu with %d torch thread(s)", cores)
    return "cpu", address, why
