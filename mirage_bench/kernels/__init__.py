"""Fast implementations (GPU, batched) of the reference image operations, each tested against it.

The reference semantics live in ``mirage_bench.degradations`` and ``mirage_bench.preprocess`` (PIL, scipy,
uint8). Everything here works on uint8 tensors ``[N, C, H, W]`` on any device and reproduces the
reference's pixels bit for bit (the blur: scipy's; resizes: PIL's; see each function), except nvjpeg decoding
(opt-in). The models' batches and autocast round floats differently, so a run records which implementation
produced its predictions.
"""
