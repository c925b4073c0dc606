"""MiniTwit: the ITU-MiniTwit microblog, its simulator API and its operations bundle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("minitwit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
