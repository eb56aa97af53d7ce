"""``python -m mirage_bench.cli`` is the same as the ``mirage-bench`` command (and ``python -m mirage_bench``)."""

from mirage_bench.cli import main

if __name__ == "__main__":  # not when a spawned worker process (macOS, Windows) imports this module as __mp_main__
    main()
