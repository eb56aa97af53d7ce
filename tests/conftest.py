"""Test-wide settings: a wide, colourless terminal so rich tables do not wrap differently per machine."""

import os

os.environ.setdefault("COLUMNS", "200")
os.environ.setdefault("NO_COLOR", "1")
