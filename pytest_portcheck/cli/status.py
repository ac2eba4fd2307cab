"""The ``portcheck`` command's exit statuses, shared by its subcommands.

0 the scan completed and every port got an answer; 1 a runtime failure, or some ports could not be
probed (``error`` results, e.g. a name that does not resolve); 2 bad usage, or an output that could not
be written; 130 Ctrl-C.
Must not import anything: the command's start-up reads it.
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
