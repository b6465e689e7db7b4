"""The one compiled module, copslp._kernels (the fused screening pass); everything else is in
pyproject.toml. ``-ffp-contract=off``: a product and a sum stay two roundings, as in numpy, so
the kernel's numbers are numpy's to the last bit.

The extension is built by default but optional: where it cannot be built (no C compiler, no
Python headers), the install goes on without it and says why on stderr. copslp then runs the
same passes in numpy (copslp/_kernels_numpy.py: the same answers, slower) and warns once when
it does."""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

flags = [] if os.name == "nt" else ["-O3", "-ffp-contract=off", "-fno-fast-math"]


class BuildOptionalExt(build_ext):
    """``build_ext`` that says on stderr, in full, why an optional extension was not built
    (setuptools then skips it, as it does for ``Extension(optional=True)``)."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, BaseError) as error:  # what setuptools skips for an optional extension
            sys.stderr.write(
                f"\ncopslp: the C extension {ext.name} could not be built: {error}\n"
                "copslp: installing without it. The analytic method then runs its screening passes in numpy\n"
                "copslp: (copslp/_kernels_numpy.py: the same answers, slower) and warns once when it does.\n"
                "copslp: to build it, install a C compiler and the Python headers, then reinstall copslp.\n\n")
            raise


setup(ext_modules=[Extension("copslp._kernels", ["copslp/_kernels.c"], extra_compile_args=flags, optional=True)],
      cmdclass={"build_ext": BuildOptionalExt})
