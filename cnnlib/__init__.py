"""cnnlib: the companion library of the course "Classic CNNs, read from the papers".

A notebook imports what it needs from here; the command line (``cnnlib``) and the tests
call the same functions, so there is one code path for all three.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cnnlib")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

from cnnlib.errors import UserError  # noqa: E402

__all__ = ["UserError", "__version__"]
