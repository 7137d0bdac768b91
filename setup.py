"""The wheel's packages; everything else about the build is in pyproject.toml.

pyproject.toml alone can only package directories found under their own names, and data/ (the
organisation and the working-time calendar) stays at the top of the repository, where the tests,
the benchmarks and the docs name it. So it is added here as the package `engine.data`: a wheel
carries it as engine/data/, which engine/paths.py prefers when it is there.
"""
from setuptools import find_namespace_packages, setup

DATA = ["engine.data", *(f"engine.data.{name}" for name in find_namespace_packages(where="data"))]

setup(
    packages=[
        *find_namespace_packages(include=["engine*", "integrations*", "worker*", "designer*"],
                                 # npm's packages are installed beside the code, not shipped in it
                                 exclude=["designer.node_modules*"]),
        *DATA,
    ],
    package_dir={"engine.data": "data"},
    # Every file of data/, with the licence and source notes each one carries.
    package_data={name: ["*"] for name in DATA},
)
