"""Face descriptors computed in worker processes.

dlib's ResNet keeps Python's global interpreter lock for the whole descriptor (about
60-100 ms a face on a quiet core; measured: a thread beside it stalls that long). In a web
process that means nothing else is answered meanwhile — not the event loop, not another
gate's frame on the second core. :class:`PooledEncoder` aligns in the calling thread
(the landmarks take a few milliseconds) and sends the 150×150 chip to a pool of worker
processes, each with its own model, so the descriptors of two gates are computed on
two cores while the web process goes on answering. The workers run the encoder the pool is
named for (``"dlib"`` by default; ``"onnx"`` needs no pool, as onnxruntime lets go of the
lock while it computes, but may have one).
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from fengchao.vision.face_dlib import DlibAligner
from fengchao.vision.faces import AlignedFace, Descriptor, FaceBox, FaceEncoder, face_encoder_class
from fengchao.vision.images import RGBImage

_WORKER: list[FaceEncoder] = []


def _start_worker(encoder: str = "dlib") -> None:
    _WORKER.append(face_encoder_class(encoder)())


def _encode_in_worker(chip: RGBImage) -> Descriptor:
    return _WORKER[0].encode(chip)


def _ping() -> bool:
    return bool(_WORKER)


_POOLS: dict[tuple[int, str], ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def encoder_pool(processes: int, encoder: str = "dlib") -> ProcessPoolExecutor:
    """The process's pool of ``processes`` workers of the named encoder (started once, on
    first use; ``spawn``: a forked copy of a threaded web process may hold a lock forever)."""
    key = (processes, encoder)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = ProcessPoolExecutor(
                processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(encoder,),
            )
            _POOLS[key] = pool
        return pool


def _forget(key: tuple[int, str], broken: ProcessPoolExecutor) -> None:
    with _POOLS_LOCK:
        if _POOLS.get(key) is broken:
            del _POOLS[key]
    broken.shutdown(wait=False, cancel_futures=True)


def shutdown_pools() -> None:
    """Stop every worker (tests; the end of a command)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


class PooledEncoder(FaceEncoder):
    """A named encoder (dlib's by default) with the descriptor computed in a worker process.
    Same contract and same descriptors as the encoder itself; a worker that died is
    replaced and the chip encoded here meanwhile."""

    dimension = 128

    def __init__(self, processes: int, encoder: str = "dlib") -> None:
        self.processes = processes
        self.encoder = encoder
        self._aligner = DlibAligner()
        self._fallback: FaceEncoder | None = None  # loaded only if a worker dies

    def warm(self) -> None:
        """Start the workers and load their models now (not on the first gate frame)."""
        pool = encoder_pool(self.processes, self.encoder)
        for future in [pool.submit(_ping) for _ in range(self.processes)]:
            future.result()

    def align(self, image: RGBImage, box: FaceBox) -> AlignedFace:
        return self._aligner.align(image, box)

    def encode(self, chip: RGBImage) -> Descriptor:
        if chip.shape != (150, 150, 3):
            raise ValueError(f"chip must be 150×150×3, got {chip.shape}")
        pool = encoder_pool(self.processes, self.encoder)
        try:
            return np.asarray(pool.submit(_encode_in_worker, np.ascontiguousarray(chip)).result())
        except BrokenProcessPool:
            _forget((self.processes, self.encoder), pool)
            if self._fallback is None:
                self._fallback = face_encoder_class(self.encoder)()
            return self._fallback.encode(chip)
