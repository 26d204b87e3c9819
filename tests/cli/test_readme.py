"""Every command the README shows works: `recx` lines are composed and checked exactly as the CLI would (choices,
pairing, every value) without training; the cheap ones run for real. Placeholders (`<timestamp>`) stand for a
finished run, so their commands are composed with a stand-in value."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from recx import cli, config_paths
from tests.cli.test_subprocess import recx

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [ln.split("#", 1)[0].strip() for block in blocks for ln in block.splitlines()]
    return [ln for ln in lines if ln.startswith("recx ")]


COMMANDS = readme_commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 15 and any("--config-dir" in c for c in COMMANDS)


@pytest.mark.parametrize("line", COMMANDS)
def test_every_readme_command_composes_and_passes_the_checks(line, monkeypatch, tmp_path):
    argv = shlex.split(re.sub(r"<[^>]+>", "placeholder", line))[1:]
    argv, dirs = cli.split_config_dirs(argv)
    if dirs:
        monkeypatch.setenv(config_paths.CONFIG_PATH_ENV, ":".join(str(REPO / d) for d in dirs))
    command, args = argv[0], argv[1:]
    if command in ("report", "data", "--help"):
        return  # run below or in their own tests
    config_name, command, args = cli.entry_point(command, args)
    cli.check_choices(args, sweep=command == "sweep")
    first = cli.first_of_sweep(args) if command == "sweep" else args
    cfg = cli.compose(config_name, first, return_hydra_config=any(a.startswith("hydra") for a in first))
    if cfg.get("reproduce") is None and config_name == "train":
        cfg = cli.compose(config_name, [*first, *cli.family_metric_override(cfg, first)])
        cli.check_compatibility(cfg)
        cli.check_values(config_name, [*first, *cli.family_metric_override(cfg, first)], cfg)


def test_the_cheap_readme_commands_run(tmp_path):
    for line in ("recx --help", "recx data list"):
        assert line in COMMANDS
        out = recx(*shlex.split(line)[1:], cwd=tmp_path)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
