"""``--set KEY=VALUE`` for the reference drivers (scripts/mmrec_driver.py, scripts/recbole_driver.py).

Standard library only: the drivers run under the reference's own interpreter, which has no recx installed; Python puts
this folder on their path.
"""

from __future__ import annotations


def parse_value(text: str):
    """``"1e-3"`` -> 0.001, ``"3"`` -> 3, ``"true"``/``"false"``/``"none"`` -> True/False/None, else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_sets(pairs: list[str]) -> dict:
    """The ``--set`` values as a config dict, each value typed by :func:`parse_value`."""
    return {key: parse_value(value) for key, value in (pair.split("=", 1) for pair in pairs)}
