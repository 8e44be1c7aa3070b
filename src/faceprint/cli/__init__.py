"""``faceprint`` command line: a thin layer over the library.

:mod:`.common` holds the Typer app, the options and output shared by every command and the
entry point; each other module registers one group of commands on that app when imported
(below). Every command takes ``--json``; failures print one line to stderr and exit non-zero
(``faceprint --debug ...`` prints the traceback too).
"""

from . import collections, evaluation, faces, gallery, info, service, training, video  # noqa: F401  (register commands)
from .common import app, main

__all__ = ["app", "main"]
