"""Build script: compiles the Cython hot paths in src/ into fastetcd's extension modules.

Set FASTETCD_NO_EXTENSIONS=1 at install time to skip compiling (the pure-Python twin is used).
"""

import os

from setuptools import Extension, setup

ext_modules = []
if not os.environ.get("FASTETCD_NO_EXTENSIONS"):
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [
            Extension("fastetcd._codec", ["src/_codec.pyx"], extra_compile_args=["-O2"]),
            Extension("fastetcd._h2", ["src/_h2.pyx"], extra_compile_args=["-O2"]),
            Extension("fastetcd._retry", ["src/_retry.pyx"], extra_compile_args=["-O2"]),
            Extension("fastetcd._watch", ["src/_watch.pyx"], extra_compile_args=["-O2"]),
            # The asyncio client, compiled from its own Python source (Cython's pure-Python
            # mode: the same file is the module where no compiler is present); its methods
            # are then C functions, without a Python frame per call. (Its first line tells
            # Cython not to take annotations as C types: the methods check their arguments.)
            Extension("fastetcd.aio", ["fastetcd/aio.py"], extra_compile_args=["-O2"]),
        ],
        compiler_directives={"language_level": "3", "embedsignature": True},
        annotate=bool(os.environ.get("FASTETCD_CYTHON_ANNOTATE")),
    )

setup(ext_modules=ext_modules)
