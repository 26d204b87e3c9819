"""recx: one config-driven experiment runner for recommendation, ranking, ECG SSL and in-context learning.

Importing the package is cheap on purpose (no torch, no Lightning): the CLI answers ``--help`` from here.
"""

__version__ = "0.1.0"
