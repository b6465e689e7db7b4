"""The one compiled module, copslp._kernels (the fused screening pass); everything else is in
pyproject.toml. ``-ffp-contract=off``: a product and a sum stay two roundings, as in numpy, so
the kernel's numbers are numpy's to the last bit."""

import os

from setuptools import Extension, setup

flags = [] if os.name == "nt" else ["-O2", "-ffp-contract=off", "-fno-fast-math"]

setup(ext_modules=[Extension("copslp._kernels", ["copslp/_kernels.c"], extra_compile_args=flags)])
