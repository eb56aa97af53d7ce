"""``python -m mirage_bench`` is the same as the ``mirage-bench`` command."""

from mirage_bench.cli import main

main()
