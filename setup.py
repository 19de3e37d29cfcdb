"""The packages of the distribution ``sciml-harness``.

The repository keeps the engine (``harness/``) and the plug-ins (``problems/``,
``solvers/``) in three top-level folders, but installs the plug-ins under the engine's
namespace as ``harness.problems`` and ``harness.solvers``, so an install adds one
top-level package to a user's environment, not three generic ones. Every package is found
by walking the folders, so a new family's folder needs no edit here.
"""

from setuptools import find_packages, setup

PLUGIN_FOLDERS = ("problems", "solvers")

packages = find_packages(include=["harness", "harness.*"])
for folder in PLUGIN_FOLDERS:
    packages += [f"harness.{name}" for name in find_packages(include=[folder, f"{folder}.*"])]

setup(
    packages=packages,
    package_dir={f"harness.{folder}": folder for folder in PLUGIN_FOLDERS},
    # the results doc's words, slurm job templates, each family's published claims
    package_data={"harness": ["results_doc.md.in"], "harness.slurm": ["templates/*"],
                  "": ["claims/*.yaml"]},
)
