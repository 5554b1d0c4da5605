"""Pick the torch device for the current Spark task (executor side only).

A task that Spark gave GPUs (`spark.task.resource.gpu.amount`) runs on the first one; more than one is a
misconfiguration we warn about (one encoder uses one GPU). Spark's GPU address is not always torch's ordinal: where
the cluster isolates GPUs with `CUDA_VISIBLE_DEVICES` (YARN, Kubernetes, Databricks) the process numbers its visible
GPUs from 0, so the address is mapped through that list (`visible_ordinal`). Without a GPU, or when CUDA is absent on
a node that claims one, the task runs on CPU with torch threads capped to the task's cores, so concurrent tasks do
not oversubscribe the executor. The choice is logged once per process.
"""

from __future__ import annotations

import logging
import os

import torch
from pyspark import TaskContext

log = logging.getLogger(__name__)
_LOGGED: set[str] = set()


class DriverCallError(RuntimeError):
    """An executor-only helper was called on the driver."""


class GpuAddressError(RuntimeError):
    """Spark's GPU address names no GPU this process can see."""


def visible_ordinal(address: str, visible: str | None, device_count: int) -> int:
    """The torch ordinal of the GPU Spark calls `address`, given `CUDA_VISIBLE_DEVICES` (`visible`, None when unset)
    and how many GPUs the process sees.

    Listed: its index in the list (YARN's "2,3" makes Spark's "3" ordinal 1). Not listed but exactly one GPU
    visible: that one, ordinal 0 (the cluster isolated the task's GPU and renumbered it, or named it by UUID, as
    spark-rapids-ml assumes). Otherwise the address is already an ordinal when it is below the device count.
    """
    address = address.strip()
    if visible is not None:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if not entries:
            raise GpuAddressError(
                f"Spark assigned GPU {address!r} but CUDA_VISIBLE_DEVICES is set and empty, so this process sees no "
                "GPU; check the cluster's GPU resource configuration"
            )
        if address in entries:
            return entries.index(address)
        if len(entries) == 1:
            return 0
    if address.isdigit() and int(address) < device_count:
        return int(address)
    raise GpuAddressError(
        f"Spark assigned GPU address {address!r}, which is neither listed in CUDA_VISIBLE_DEVICES={visible!r} nor an "
        f"ordinal below the {device_count} GPU(s) this process sees; check the GPU discovery script "
        "(spark.executor.resource.gpu.discoveryScript) against the cluster's GPU isolation"
    )


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
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            device = f"cuda:{visible_ordinal(address, visible, torch.cuda.device_count())}"
            _log_once("encoder device %s (Spark GPU address %s, CUDA_VISIBLE_DEVICES=%s)", device, address, visible)
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
