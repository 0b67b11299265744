"""`python -m bunko` and the `bunko` script.

Ctrl-C is handled from the first moment: while bunko.cli loads, nothing has been
touched yet, so an interrupt exits 130 with the usual message (cli.main then
installs the handler for the rest of the run).
"""

from __future__ import annotations

import os
import signal
from typing import Any


def _early_sigint(signum: int, frame: Any) -> None:
    os.write(2, b"Interrupted; the index is unchanged or fully updated.\n")
    os._exit(130)


def main() -> None:
    signal.signal(signal.SIGINT, _early_sigint)
    from bunko.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
