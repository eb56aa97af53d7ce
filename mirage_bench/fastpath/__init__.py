"""Fast implementations (GPU, batched) of the reference image operations, each tested against it.

The reference semantics live in ``mirage_bench.degradations`` and ``mirage_bench.preprocess`` (PIL, scipy,
uint8). Everything here works on uint8 tensors ``[N, C, H, W]`` on any device and reproduces the
reference within a stated tolerance (see each function), so a run may record which implementation
produced its predictions.
"""
