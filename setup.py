"""Declares and cythonizes fastgd's compiled extension (metadata lives in pyproject.toml).

Environment variables:
  FASTGD_NO_OPENMP=1   build without OpenMP (a serial build; also chosen when the
                       compiler does not accept -fopenmp)
  FASTGD_NATIVE=1      add -march=native (not for wheels that must run elsewhere)
"""

import os
import sys
import tempfile

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _compiler_accepts(compiler, flags, link_flags):
    """True when a tiny OpenMP program compiles and links with these flags."""
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn omp_get_max_threads()>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "check_openmp.c")
        with open(path, "w") as fh:
            fh.write(src)
        try:
            objs = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(
                objs, os.path.join(tmp, "check_openmp"), extra_postargs=link_flags
            )
        except Exception:  # noqa: BLE001 - any failure to build means no OpenMP
            return False
    return True


CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}


class BuildExt(build_ext):
    """Cythonizes, then adds -O3, and OpenMP where the compiler supports it
    (checked here, at build time).

    Cython runs here, when the extension is built, not when setup.py is read:
    an sdist then ships the .pyx and .pxi sources and no generated C.
    """

    def build_extensions(self):
        from Cython.Build import cythonize

        generated = {
            e.name: e for e in cythonize(self.extensions, compiler_directives=CYTHON_DIRECTIVES)
        }
        for ext in self.extensions:
            ext.sources = list(generated[ext.name].sources)
        ctype = self.compiler.compiler_type
        compile_args, link_args = [], []
        if ctype == "msvc":
            compile_args.append("/O2")
            omp_c, omp_l = ["/openmp"], []
        else:
            compile_args += ["-O3"]
            if os.environ.get("FASTGD_NATIVE") == "1":
                compile_args.append("-march=native")
            omp_c, omp_l = ["-fopenmp"], ["-fopenmp"]
        use_omp = os.environ.get("FASTGD_NO_OPENMP") != "1" and _compiler_accepts(
            self.compiler, omp_c, omp_l
        )
        if use_omp:
            compile_args += omp_c
            link_args += omp_l
        print(f"fastgd: building with OpenMP={'yes' if use_omp else 'no'}", file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + compile_args
            ext.extra_link_args = list(ext.extra_link_args or []) + link_args
        super().build_extensions()


extensions = [
    Extension(
        "fastgd.backends._cython",
        ["fastgd/backends/_cython.pyx"],
        depends=["fastgd/backends/_stats.pxi"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
