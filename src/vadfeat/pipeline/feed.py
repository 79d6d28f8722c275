"""Feeding a CUDA model: batches staged in pinned memory, uploads on a side stream, results
fetched one batch later.

The model thread of a GPU run should do little but queue work for the device.
:class:`DeviceFeed` turns a list of prepared snippets into a batch on the device and
returns at once with a ``fetch`` function for the batch's features:

1. **Staging.** CPU snippets are stacked straight into page-locked memory
   (``torch.empty(..., pin_memory=True)``, served and reused by torch's caching host
   allocator, which does not hand a block out again before the copies reading it have
   completed): one host copy per batch, where ``stack`` then ``pin_memory()`` made two.
2. **Upload on a side stream** (:meth:`FeatureExtractor.upload`, which also uploads
   the snippets of ``preprocess="device"`` and ``crops_on_device``). The host-to-device
   copy runs on its own CUDA stream, so it overlaps the model's compute of the
   previous batch on the compute stream; the compute stream waits for the copy
   (``wait_stream``) and the uploaded batch is marked as used there
   (``record_stream``), so the device allocator does not reuse it early.
3. **Asynchronous fetch.** The features are copied into a pinned host tensor with
   ``non_blocking=True`` and a blocking-sync event is recorded; ``fetch()`` waits for
   that event (sleeping, not spinning a core) only when the caller asks for the rows.
   :class:`~vadfeat.pipeline.stream.SnippetBatcher` (``depth=1``) fetches batch ``i``
   after submitting batch ``i + 1``, so the host assembles the next batch while the
   device computes.

Snippets already on the device (``preprocess="device"``, uploaded and transformed by
:meth:`~vadfeat.pipeline.extractor.FeatureExtractor.prepare`) are stacked there.  The
features equal :meth:`~vadfeat.pipeline.extractor.FeatureExtractor.run_model`'s:
the same forward on the same batch; only the copies move (``bench/gpu_check.py``
checks it on a GPU host; CPU runs do not use this class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from vadfeat.pipeline.stream import Fetch

if TYPE_CHECKING:
    from vadfeat.pipeline.extractor import FeatureExtractor


class DeviceFeed:
    """Host -> CUDA device -> host for one :class:`FeatureExtractor` (see the module docs).

    :meth:`submit` takes ``N`` snippets ``[crops, 3, T, S, S]`` (float32 on the CPU, or
    on the extractor's device) and returns ``fetch``, which waits for the batch and
    returns its features ``[N, (crops,) *feature_shape]`` float32.  Raises
    :class:`ValueError` when the extractor's device is not CUDA.
    """

    def __init__(self, extractor: FeatureExtractor) -> None:
        if extractor.device.type != "cuda":
            raise ValueError(f"DeviceFeed feeds a CUDA device, not {extractor.device}")
        self.ext = extractor
        self.device = extractor.device

    def submit(self, clips: list[torch.Tensor]) -> Fetch:
        n = len(clips)
        compute = torch.cuda.current_stream(self.device)
        with torch.inference_mode():
            if clips[0].is_cuda:
                x = torch.stack(clips)
            else:
                host = torch.empty((n, *clips[0].shape), dtype=clips[0].dtype, pin_memory=True)
                torch.stack(clips, out=host)
                x = self.ext.upload(host)  # on the side stream; compute waits for it
            y = self.ext.forward(x.flatten(0, 1)).float()
            out = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
            out.copy_(y, non_blocking=True)
            done = torch.cuda.Event(blocking=True)  # fetch() sleeps in the wait, not spins
            done.record(compute)
        return _fetcher(done, out, lambda rows: self.ext.rows(rows, n))


def _fetcher(done: torch.cuda.Event, out: torch.Tensor,
             shape: Callable[[np.ndarray], np.ndarray]) -> Fetch:
    def fetch() -> np.ndarray:
        done.synchronize()
        # A copy: the pinned block goes back to torch's host cache with `out`.
        return shape(out.numpy().copy())

    return fetch


__all__ = ["DeviceFeed"]
