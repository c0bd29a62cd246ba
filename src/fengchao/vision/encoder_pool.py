"""Face descriptors computed in worker processes.

dlib's ResNet keeps Python's global interpreter lock for the whole descriptor (about
60-100 ms a face on a quiet core; measured: a thread beside it stalls that long). In a web
process that means nothing else is answered meanwhile — not the event loop, not another
gate's frame on the second core. :class:`PooledEncoder` aligns in the calling thread
(the landmarks take a few milliseconds) and sends the 150×150 chip to a pool of worker
processes, each with its own dlib model, so the descriptors of two gates are computed on
two cores while the web process goes on answering.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from fengchao.vision.face_dlib import DlibEncoder
from fengchao.vision.faces import AlignedFace, Descriptor, FaceBox, FaceEncoder
from fengchao.vision.images import RGBImage

_WORKER: list[DlibEncoder] = []


def _start_worker() -> None:
    _WORKER.append(DlibEncoder())


def _encode_in_worker(chip: RGBImage) -> Descriptor:
    return _WORKER[0].encode(chip)


def _ping() -> bool:
    return bool(_WORKER)


_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def encoder_pool(processes: int) -> ProcessPoolExecutor:
    """The process's pool of ``processes`` encoder workers (started once, on first use;
    ``spawn``: a forked copy of a threaded web process may hold a lock forever)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(processes)
        if pool is None:
            pool = ProcessPoolExecutor(
                processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
            _POOLS[processes] = pool
        return pool


def _forget(processes: int, broken: ProcessPoolExecutor) -> None:
    with _POOLS_LOCK:
        if _POOLS.get(processes) is broken:
            del _POOLS[processes]
    broken.shutdown(wait=False, cancel_futures=True)


def shutdown_pools() -> None:
    """Stop every worker (tests; the end of a command)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


class PooledEncoder(FaceEncoder):
    """dlib's encoder with the descriptor computed in a worker process. Same contract and
    same descriptors as :class:`DlibEncoder`; a worker that died is replaced and the chip
    encoded here meanwhile."""

    dimension = 128

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._local = DlibEncoder()  # alignment, and the fallback

    def warm(self) -> None:
        """Start the workers and load their models now (not on the first gate frame)."""
        pool = encoder_pool(self.processes)
        for future in [pool.submit(_ping) for _ in range(self.processes)]:
            future.result()

    def align(self, image: RGBImage, box: FaceBox) -> AlignedFace:
        return self._local.align(image, box)

    def encode(self, chip: RGBImage) -> Descriptor:
        if chip.shape != (150, 150, 3):
            raise ValueError(f"chip must be 150×150×3, got {chip.shape}")
        pool = encoder_pool(self.processes)
        try:
            return np.asarray(pool.submit(_encode_in_worker, np.ascontiguousarray(chip)).result())
        except BrokenProcessPool:
            _forget(self.processes, pool)
            return self._local.encode(chip)
