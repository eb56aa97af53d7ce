"""The benchmark matrix as cluster jobs through submitit: the driver (``launch``), what a job runs (``jobs``),
and the per-cell lock that makes each cell computed once (``cell_lock``)."""
