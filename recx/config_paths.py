"""Where configs come from: recx's own groups (shipped inside the package) and the user's config folders.

recx's configs live in ``recx/conf`` so that a wheel or a git install composes runs from any working directory. A
user adds models, datasets, experiments, ... without editing the package by pointing recx at config folders of the
same layout (``<dir>/model/<name>.yaml``, ``<dir>/dataset/<name>.yaml``, ...):

* ``RECX_CONFIG_PATH=dir1:dir2`` (``os.pathsep``-separated), and/or
* ``recx <command> --config-dir DIR`` (repeatable; turned into ``RECX_CONFIG_PATH`` so that every process a run
  starts — reproduction steps, DDP workers, sweep jobs — sees the same folders).

Their groups merge with recx's (Hydra search path), recx's own pre-checks (``group=choice`` names, model × dataset
pairing, ``recx data``) list them, and each folder is put on ``sys.path``, so a ``_target_`` may name a module that
sits beside the YAML files (``_target_: my_models.TwoTower``). A user config may not reuse a shipped name: a clash
would make which file wins depend on search order, so it is refused with both paths.

Nothing here imports torch or Lightning.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from recx.errors import ConfigError

#: recx's own config groups, inside the package (so wheels carry them)
CONF_DIR = (Path(__file__).resolve().parent / "conf").resolve()
#: user config folders, ``os.pathsep``-separated
CONFIG_PATH_ENV = "RECX_CONFIG_PATH"


def user_config_dirs() -> list[Path]:
    """The user's config folders from ``RECX_CONFIG_PATH``, in order; a missing folder is a ConfigError."""
    raw = os.environ.get(CONFIG_PATH_ENV, "")
    dirs: list[Path] = []
    for part in (p for p in raw.split(os.pathsep) if p.strip()):
        path = Path(part).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError("user config folder does not exist", path=path, field=CONFIG_PATH_ENV,
                              fix="create it (with model/, dataset/, experiment/ ... subfolders) or fix the path")
        if path != CONF_DIR and path not in dirs:
            dirs.append(path)
    return dirs


def add_user_config_dirs(dirs: list[str | Path]) -> None:
    """``--config-dir`` folders: prepended to ``RECX_CONFIG_PATH`` of this process (and so of its children)."""
    if not dirs:
        return
    current = [p for p in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if p.strip()]
    added = [str(Path(d).expanduser().resolve()) for d in dirs]
    os.environ[CONFIG_PATH_ENV] = os.pathsep.join(dict.fromkeys([*added, *current]))


def search_dirs() -> list[Path]:
    """recx's folder first, then the user's."""
    return [CONF_DIR, *user_config_dirs()]


def activate_user_modules() -> None:
    """Put every user config folder on ``sys.path`` so ``_target_: my_module.Class`` beside the YAMLs imports."""
    for path in user_config_dirs():
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def hydra_searchpath_override() -> list[str]:
    """``hydra.searchpath=[file://...]`` for the user's folders (empty when there are none)."""
    dirs = user_config_dirs()
    if not dirs:
        return []
    check_no_clashes()
    return ["hydra.searchpath=[" + ",".join(f"file://{d}" for d in dirs) + "]"]


def config_files(group: str) -> dict[str, Path]:
    """``name -> file`` for every config of a group, recx's and the user's (a name clash is refused)."""
    found: dict[str, Path] = {}
    for base in search_dirs():
        folder = base / group
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            if path.stem in found:
                raise ConfigError(f"{group} '{path.stem}' is defined twice: {found[path.stem]} and {path}",
                                  path=path, field=group, fix="rename the user config (shipped names are taken)")
            found[path.stem] = path
    return found


def check_no_clashes() -> None:
    """Refuse user configs that reuse a shipped name, in any group (the primary configs included)."""
    for base in user_config_dirs():
        for path in base.rglob("*.yaml"):
            shipped = CONF_DIR / path.relative_to(base)
            if shipped.is_file():
                raise ConfigError(f"user config {path} has the name of recx's {shipped}", path=path,
                                  fix="rename the user config (shipped names are taken)")


def group_choices(group: str) -> list[str]:
    """The choices of a config group across recx's and the user's folders."""
    return sorted(config_files(group))


def config_file(group: str, name: str) -> Path:
    """The YAML file of one choice (``config_file("dataset", "ml100k")``)."""
    files = config_files(group)
    if name not in files:
        raise ConfigError(f"unknown {group} '{name}'", field=group, fix=f"choose one of: {', '.join(sorted(files))}")
    return files[name]
