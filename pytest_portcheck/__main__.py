"""``python -m pytest_portcheck`` runs the ``portcheck`` command.

Must not import pytest.
"""

import sys

from pytest_portcheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
