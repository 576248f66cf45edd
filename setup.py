"""Only for the cffi extension (gupctl._loop); the rest is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["gupctl/_loop_build.py:ffibuilder"])
