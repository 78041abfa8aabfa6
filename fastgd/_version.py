"""fastgd's version: the one place it is written (setuptools reads it from here
without importing fastgd; ``fastgd.__version__`` and ``fastgd --version`` too)."""

__version__ = "0.2.0"
