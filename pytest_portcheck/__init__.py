"""pytest-portcheck: declared network exposure as pytest items, over a fast concurrent connect scanner.

Importing the package must stay cheap and must not import pytest (the ``portcheck`` command uses it).
"""

__version__ = "0.1.0"
