"""Editing the hyperparameters at the top of a file, as a learner does: any valid Python line runs with its value in
force, a number written in another type than the code needs is read as it needs, and a value no run can use stops
the run in one line that names the line to change. Each kind of file is checked on a copy: a script of the series,
one of names/, and micrograd/moons.py."""

import contextlib
import importlib.util
import io
import re
import shutil
import sys

import pytest

from conftest import ROOT

# (the name, the line that replaces its line at the top, the value that must be in force)
SERIES_EDITS = [
    ("batch_size", "batch_size = 8", 8),  # a comment deleted
    ("learning_rate", "learning_rate = 3e-4 # slower", 3e-4),  # one space before the '#'
    ("n_embd", "n_embd=48  # no spaces around =", 48),
    ("device", "device = 'cpu'", "cpu"),  # quoted otherwise, the comment gone
    ("max_iters", "max_iters = 4_0  # written with an underscore", 40),
    ("eval_interval", "eval_interval = 20  #", 20),  # a comment shortened to a bare '#'
    ("dropout", "dropout = 0  # an int where a fraction goes", 0.1),  # and --dropout=0.1 given
    ("temperature", "temperature = 1", 0.5),  # and --temperature=0.5 given
    ("prompt", 'prompt = "a # b"  # a "#" inside a string is no comment', "ROMEO"),  # and --prompt=ROMEO given
]
NAMES_EDITS = [
    ("batch_size", "batch_size=32", 32),
    ("learning_rate", "learning_rate = 1 # an int where a float goes", 0.05),  # and --learning_rate=0.05 given
    ("max_iters", "max_iters = 1e1", 10),  # an integral float where a count goes
    ("eval_interval", "eval_interval = 5  #", 5),
    ("device", "device = 'cpu'", "cpu"),
]
MOONS_EDITS = [
    ("n_samples", "n_samples = 8", 8),
    ("n_hidden", "n_hidden=2  # fewer", 2),
    ("max_iters", "max_iters = 2e0", 2),
    ("learning_rate", "learning_rate = 1 # an int", 1.0),
    ("eval_interval", "eval_interval = 1  #", 1),
]


def load_copy(path):
    """The file at path as a fresh module; moons.py imports nn.py from beside it, as a script does."""
    spec = importlib.util.spec_from_file_location(f"edited_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def edited(tmp_path, relative, edits, extra=""):
    """A copy of ROOT/relative in tmp_path with each edit's line in place of the original one, and `extra` lines
    of the learner's own after the last hyperparameter; imported as a fresh module."""
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (ROOT / relative).read_text(encoding="utf-8")
    for name, line, _ in edits:
        text, count = re.subn(rf"^{name} = .*$", line.replace("\\", r"\\"), text, count=1, flags=re.M)
        assert count == 1, name
    path.write_text(text.replace("\nHYPERPARAMETERS = ", f"\n{extra}HYPERPARAMETERS = ", 1), encoding="utf-8")
    for neighbour in ("nn.py", "engine.py") if relative.startswith("micrograd/") else ():
        shutil.copy(ROOT / "micrograd" / neighbour, path.parent)
    return load_copy(path)


def run(module, argv):
    """(exit status, stdout, stderr) of module.main(argv)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main(argv)
        except SystemExit as stop:
            code = stop.code
    return (1, out.getvalue(), f"{code}\n") if isinstance(code, str) else (code, out.getvalue(), err.getvalue())


@pytest.fixture
def names_file(tmp_path):
    path = tmp_path / "data" / "few.txt"
    path.parent.mkdir()
    path.write_text("\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 20) + "\n")
    return path


def test_every_edit_to_a_series_script_runs_with_its_value_in_force(tmp_path, small_text):
    module = edited(tmp_path, "v8.py", SERIES_EDITS, extra="my_scale = 2  # a line of the learner's own\n")
    code, out, err = run(module, [f"--data_path={small_text}", "--block_size=8", "--n_layer=1", "--ckpt_path=",
                                  "--max_new_tokens=5", "--dropout=0.1", "--temperature=0.5", "--my_scale=3",
                                  "--prompt=ROMEO"])
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("step ")] == ["step 0", "step 20",
                                                                                           "step 40"]
    for name, _, value in SERIES_EDITS:
        assert getattr(module, name) == value and type(getattr(module, name)) is type(value), name
    assert module.my_scale == 3 and type(module.my_scale) is int  # a new name is a hyperparameter, typed as given


def test_every_edit_to_a_names_script_runs_with_its_value_in_force(tmp_path, names_file):
    module = edited(tmp_path, "names/bigram.py", NAMES_EDITS)
    code, out, err = run(module, [f"--data_path={names_file}", "--learning_rate=0.05", "--num_samples=2"])
    assert code == 0, err
    for name, _, value in NAMES_EDITS:
        assert getattr(module, name) == value and type(getattr(module, name)) is type(value), name


def test_every_edit_to_moons_runs_with_its_value_in_force(tmp_path):
    module = edited(tmp_path, "micrograd/moons.py", MOONS_EDITS)
    code, out, err = run(module, [])
    assert code == 0, err
    assert out.splitlines()[-1].startswith("after 2 steps: loss ")
    for name, _, value in MOONS_EDITS:
        assert getattr(module, name) == value and type(getattr(module, name)) is type(value), name


@pytest.mark.parametrize("relative", ["v2.py", "v8.py", "names/mlp.py", "micrograd/moons.py"])
def test_help_works_without_a_single_comment(relative, tmp_path, capsys):
    path = edited(tmp_path, relative, []) and tmp_path / relative
    top, rest = path.read_text(encoding="utf-8").split("\nHYPERPARAMETERS = ", 1)
    path.write_text(re.sub(r"  #.*$", "", top, flags=re.M) + "\nHYPERPARAMETERS = " + rest, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        load_copy(path).main(["--help"])
    assert exit_info.value.code == 0 and "--max_iters int" in " ".join(capsys.readouterr().out.split())


def test_a_hash_inside_a_string_is_no_comment_and_the_comment_after_it_is_the_help(tmp_path, capsys):
    module = edited(tmp_path, "v8.py", [("prompt", 'prompt = "a # b"  # the # mark, as text', None)])
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "--prompt str the # mark, as text (default: a # b)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("relative, line, message", [
    ("v8.py", "max_iters = 2.5", "error: max_iters = 2.5 in v8.py: max_iters must be a whole number below 2**31,"
                                 " at least 0"),
    ("v8.py", "batch_size = 0  # none", "error: batch_size = 0 in v8.py: batch_size must be a whole number below"
                                        " 2**31, at least 1"),
    ("names/counts.py", "num_samples = -1", "error: num_samples = -1 in counts.py: num_samples must be a whole"
                                            " number below 2**31, at least 0"),
    ("micrograd/moons.py", "n_hidden = 2.5", "error: n_hidden = 2.5 in moons.py: n_hidden must be a whole number"
                                             " from 1 to 32"),
])
def test_a_value_at_the_top_that_no_run_can_use_is_refused_in_one_line_naming_it(relative, line, message, tmp_path):
    name = line.split("=")[0].strip()
    module = edited(tmp_path, relative, [(name, line, None)])
    code, out, err = run(module, [])
    assert code == 1 and err == message + "\n" and out == ""


@pytest.mark.parametrize("arg, message", [
    ("--max_iters=2.5", "error: --max_iters=2.5: max_iters must be a whole number below 2**31, at least 0"),
    ("--max_iters=2e1", None),  # any spelling of a whole number
    ("--dropout=1e-1", None),
])
def test_a_number_option_takes_any_number_its_hyperparameter_can_hold(arg, message, tmp_path):
    module = edited(tmp_path, "v8.py", [])
    if message is None:
        module.parse_args([arg])
        name, value = arg[2:].split("=")
        assert getattr(module, name) == float(value) and type(getattr(module, name)) is type(
            getattr(edited(tmp_path / "again", "v8.py", []), name))
        return
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args([arg])
    assert exit_info.value.code == message
