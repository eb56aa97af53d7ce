"""Reports people read, computed from the prediction store: tables, figures, leaderboards, checks.

- :mod:`runs`: load runs' predictions and provenance; refuse incomparable runs.
- :mod:`tables` / :mod:`render`: paper-style tables in Markdown, LaTeX, CSV, JSON, HTML, rich.
- :mod:`figures` / :mod:`page`: matplotlib figures and the self-contained HTML page.
- :mod:`report`: ``mirage-bench report``.
"""
