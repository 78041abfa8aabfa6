"""pytest, for tests/ and bench/: settings that must precede ``import fastgd``."""

import os

# The suite runs hundreds of different fits in one process: numba's generic
# kernels (one compilation per function and dtype, serving every family) cost
# far less there than a family per job.  tests/test_numba_compile.py runs the
# per-job families in fresh processes and checks they give the same bits.
os.environ.setdefault("FASTGD_NUMBA_KERNELS", "generic")
