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
        ],
        compiler_directives={"language_level": "3", "embedsignature": True},
        annotate=bool(os.environ.get("FASTETCD_CYTHON_ANNOTATE")),
    )

setup(ext_modules=ext_modules)
