"""Batched uint8 image kernels that reproduce the reference image operations bit for bit, on any torch device.

The reference semantics live in ``mirage_bench.degradations`` and ``mirage_bench.preprocess`` (PIL, scipy,
uint8). Everything here works on uint8 tensors ``[N, C, H, W]``: the blur gives scipy's bytes, resizes PIL's
(``ops``, ``resample``; on CUDA as Triton kernels, imported on first use through ``triton_kernels``). A leaf
package: it imports nothing of the engine, the scorers or the detectors.
"""
