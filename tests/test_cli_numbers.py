"""Every numeric option of every subcommand takes only the values it can use: a bad one exits 2 with argparse's
one-line message naming the option, before any file is read or written (`flowscope.cli.numbers`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flowscope.cli.commands import build_parser, main
from flowscope.training import recipes

MODEL = "missing.safetensors"  # never read: the options are refused first

BAD = [
    *[(["train"], option, value) for option, value in [
        ("--steps", "0"), ("--steps", "-5"), ("--steps", "1.5"), ("--batch-size", "0"), ("--batch-size", "1"),
        ("--lr", "0"), ("--lr", "-1"), ("--lr", "nan"), ("--lr", "inf"), ("--n", "0"), ("--seed", "-1"),
        ("--sigma", "-0.1"), ("--sigma", "nan"), ("--width", "0"), ("--depth", "0"), ("--fourier-features", "-1"),
        ("--base-channels", "0"), ("--check-every", "0"), ("--ot-block", "-1"), ("--label-dropout", "1"),
        ("--label-dropout", "nan")]],
    *[(["sample", MODEL], option, value) for option, value in [
        ("-n", "0"), ("-n", "-3"), ("--steps", "0"), ("--atol", "0"), ("--rtol", "inf"), ("--guidance", "nan"),
        ("--seed", "-1")]],
    *[(["eval", MODEL], option, value) for option, value in [
        ("--samples", "0"), ("--samples", "-1"), ("--draws", "0"), ("--n", "-2"), ("--atol", "nan"),
        ("--steps", "-1")]],
    *[(["reflow", MODEL], option, value) for option, value in [
        ("--pairs", "1"), ("--steps", "0"), ("--rounds", "0"), ("--batch-size", "0"), ("--lr", "inf"),
        ("--solver-steps", "0"), ("--atol", "-1"), ("--guidance", "inf"), ("--seed", "-2")]],
    (["zoo", "build"], "--jobs", "0"),
    (["ui"], "--port", "0"),
    (["ui"], "--port", "70000"),
]


@pytest.mark.parametrize(("command", "option", "value"), BAD,
                         ids=[f"{' '.join(c[:1] + c[1:2] if c[0] == 'zoo' else c[:1])} {o} {v}" for c, o, v in BAD])
def test_a_bad_number_exits_2_naming_its_option(command: list[str], option: str, value: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main([*command, option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and f"got '{value}'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_train_steps_0_is_refused_not_read_as_the_default(tmp_path: Path) -> None:
    """`--steps 0` used to train the default 6,000 steps (`args.steps or DEFAULT`)."""
    result = subprocess.run(["flowscope", "train", "--dataset", "moons", "--steps", "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "argument --steps: must be an integer >= 1, got '0'" in result.stderr
    assert not list(tmp_path.iterdir())


def test_options_not_given_take_the_recipe_of_the_library() -> None:
    args = build_parser().parse_args(["train"])
    assert (args.width, args.depth, args.ot_block) == (recipes.DEFAULT.width, recipes.DEFAULT.depth,
                                                        recipes.DEFAULT.config.ot_block)
    assert args.steps is None and args.lr is None  # resolved per kind of data: the table recipe or the images'
