"""The README's first two sections, followed as a newcomer follows them, at tiny sizes: every command runs, and
git sees the checkout as it was (apart from what it ignores)."""

import re
import shlex
import shutil
import subprocess

import pytest

from conftest import ROOT, Forked, load_script, tiny_args

README = (ROOT / "README.md").read_text(encoding="utf-8")
START = README[README.index("## No GPU? Start here"):README.index("## The chapters")]  # and "On a GPU"


def commands():
    """Each `python X.py ...` of the two sections that a newcomer runs: a line of a code block (the Colab line too)
    or a table's first cell."""
    found = re.findall(r"^(?:\| `|!.*&& )?(python (?:\S+/)?\w+\.py[^`\n&#]*)", START, flags=re.M)
    return list(dict.fromkeys(command.strip() for command in found))


def git_status():
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout


def test_the_first_sections_give_a_command_for_each_step_of_the_path():
    scripts = [shlex.split(command)[1] for command in commands()]
    assert scripts[:7] == ["micrograd/moons.py", "names/counts.py", "names/wavenet.py", "bigram.py", "v2.py", "v4.py",
                           "v5.py"]
    assert "v6.py" in scripts  # on a GPU, after v5


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("command", commands())
def test_each_command_runs_and_leaves_git_status_as_it_was(command, small_text, monkeypatch):
    """Run from the checkout as the README says, shrunk: the sizes, steps and device given after its own options."""
    before = git_status()
    script = shlex.split(command)[1]
    monkeypatch.syspath_prepend(str((ROOT / script).parent))  # micrograd's modules, as the script finds them
    module = load_script(script.removesuffix(".py"))
    shrunk = tiny_args(module, max_iters=4, eval_interval=2, n_samples=20)
    if "data_path" in module.HYPERPARAMETERS and not script.startswith("names/"):
        shrunk.append(f"--data_path={small_text}")
    with Forked(ROOT / script, shlex.split(command)[2:] + shrunk, cwd=ROOT) as run:
        code, _, stderr = run.wait(timeout=60)
    assert code == 0, stderr
    assert git_status() == before
