"""The command line and the input checks: the same plumbing in every script, run as a user runs it."""

import builtins
import os
import types
import pathlib
import signal
import sys

import pytest

from conftest import GPT_SCRIPTS, ROOT, SCRIPTS, Started, load_script, run_script, tiny_args

BANNER = "# ---- command line and input checks (the same in every file)"
LAST = SCRIPTS[-1]  # the plumbing is the same text everywhere (tested first), so one script shows its behaviour


class TrainingStarted(Exception):
    """Raised in place of train(): a check that should have stopped the run did not."""


def refuse_training(module, monkeypatch):
    def train(*args, **kwargs):
        raise TrainingStarted

    monkeypatch.setattr(module, "train", train)
    return module


def repository_state():
    """Every file under the repository root with its size and modification time."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in ROOT.rglob("*")
            if path.is_file() and ".git" not in path.parts and "__pycache__" not in path.parts}


def test_the_plumbing_is_the_same_text_in_every_script():
    tails = {}
    for name in SCRIPTS:
        text = (ROOT / f"{name}.py").read_text(encoding="utf-8")
        assert text.count(BANNER) == 1, name
        tails[name] = text[text.index(BANNER):]
    assert all(tail == tails[SCRIPTS[0]] for tail in tails.values())


@pytest.mark.parametrize("name", SCRIPTS)
def test_import_only_defines_names(name, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("a file was opened at import")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(pathlib.Path, "read_text", refuse)
    module = load_script(name)
    assert callable(module.main)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_number_has_a_rule_and_every_rule_a_number(name):
    module = load_script(name)
    numbers = {n for n in module.HYPERPARAMETERS if type(getattr(module, n)) in (int, float)}
    assert set(module.RULES) == numbers


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_defaults_meet_the_rules(name):
    module = load_script(name)
    module.apply_overrides([])
    assert module.max_iters > 0


def test_overrides_are_cast_to_the_type_of_the_default():
    module = load_script(LAST)
    module.apply_overrides(["--max_iters=7", "--learning_rate=2", "--device=cpu", "--compile=False"])
    assert module.max_iters == 7 and isinstance(module.max_iters, int)
    assert module.learning_rate == 2.0 and isinstance(module.learning_rate, float)
    assert module.device == "cpu" and module.compile is False


def test_help_lists_every_hyperparameter_with_its_default_and_comment(capsys):
    module = load_script(LAST)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--max_iters=5", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in module.HYPERPARAMETERS:
        assert f"  --{name}={getattr(module, name)}\n" in out
    assert "      independent sequences processed in parallel [>= 1]\n" in out
    assert "      'auto' picks cuda, then mps, then cpu\n" in out


def test_h_from_the_shell_prints_the_help_and_exits_0(tmp_path):
    result = run_script(LAST, "-h", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: python {LAST}.py [--name=value ...]")


BAD_ARGS = {
    "unknown name": (["--not_a_setting=1"], "unknown argument '--not_a_setting=1'; python"),
    "not --name=value": (["max_iters=5"], "unknown argument 'max_iters=5'"),
    "no value": (["--max_iters"], "--max_iters has no value: the form is --max_iters=value"),
    "wrong type": (["--max_iters=1.5"], "--max_iters must be an integer, got '1.5'"),
    "not a boolean": (["--compile=no"], "--compile must be True or False, got 'no'"),
    "negative max_iters": (["--max_iters=-1"], "--max_iters must be an integer >= 0, got -1"),
    "learning rate zero": (["--learning_rate=0"], "--learning_rate must be a finite number > 0, got 0.0"),
    "learning rate nan": (["--learning_rate=nan"], "--learning_rate must be a finite number > 0, got nan"),
    "learning rate inf": (["--learning_rate=inf"], "--learning_rate must be a finite number > 0, got inf"),
    "dropout 1": (["--dropout=1"], "--dropout must be a finite number >= 0 and < 1, got 1.0"),
    "heads do not divide the width": (["--n_embd=10", "--n_head=3"],
                                      "--n_embd must be an integer >= 1 and multiple of n_head (3), got 10"),
    "seed past 64 bits": ([f"--seed={2**70}"], f"--seed must be an integer >= 0 and < {2**64}, got {2**70}"),
    "negative sample length": (["--max_new_tokens=-1"], "--max_new_tokens must be an integer >= 0, got -1"),
    "unknown device": (["--device=tpu"], "--device=tpu is not a device name"),
    "malformed device": (["--device=cpu:x"], "--device=cpu:x is not a device name"),
    "absent device": (["--device=cpu:1"], "--device=cpu:1 is not available here"),
}


@pytest.mark.parametrize("case", BAD_ARGS)
def test_bad_arguments_stop_before_training_with_a_one_line_message(case, monkeypatch, small_text):
    module = refuse_training(load_script(LAST), monkeypatch)
    args, message = BAD_ARGS[case]
    with pytest.raises(SystemExit) as exit_info:
        module.main(tiny_args(module) + [f"--data_path={small_text}", "--out_path="] + args)
    assert isinstance(exit_info.value.code, str)  # a message: exit status 1, no traceback
    assert exit_info.value.code.startswith("error: ") and "\n" not in exit_info.value.code
    assert message in exit_info.value.code


BAD_DATA = {
    "missing file": (None, "no data file"),
    "empty file": (b"", "is empty"),
    "too short for block_size in the val split": (b"x" * 60, "too short for block_size=8"),
    "shorter than one block": (b"tiny", "too short for block_size=8"),
    "not UTF-8": (b"caf\xe9 \xff\xfe", "is not UTF-8"),
    "a directory": ("dir", "cannot read"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_files_stop_before_training_with_a_one_line_message(case, tmp_path, monkeypatch):
    module = refuse_training(load_script(LAST), monkeypatch)
    content, message = BAD_DATA[case]
    path = tmp_path / "data.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        module.main(tiny_args(module) + [f"--data_path={path}", "--out_path="])
    assert message in exit_info.value.code and "\n" not in exit_info.value.code


def test_an_out_path_that_is_the_training_text_is_refused_and_the_text_kept(tmp_path, monkeypatch):
    module = refuse_training(load_script(LAST), monkeypatch)
    data = tmp_path / "data.txt"
    data.write_text("the training text " * 200)
    with pytest.raises(SystemExit) as exit_info:
        module.main(tiny_args(module) + [f"--data_path={data}", f"--out_path={tmp_path / '.' / 'data.txt'}"])
    assert "is also --data_path" in exit_info.value.code
    assert data.read_text() == "the training text " * 200


@pytest.mark.parametrize("where, message", [("a directory", "is a directory"),
                                            ("a missing directory", "no directory"),
                                            ("an unwritable directory", "cannot be written")])
def test_an_out_path_that_cannot_be_written_is_refused_before_training(where, message, tmp_path, monkeypatch,
                                                                     small_text):
    module = refuse_training(load_script(LAST), monkeypatch)
    out = {"a directory": tmp_path, "a missing directory": tmp_path / "no" / "sample.txt",
           "an unwritable directory": tmp_path / "sample.txt"}[where]
    if where == "an unwritable directory":  # root may write anywhere: have the OS say no
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(SystemExit) as exit_info:
        module.main(tiny_args(module) + [f"--data_path={small_text}", f"--out_path={out}"])
    assert message in exit_info.value.code


def test_bad_input_leaves_an_existing_output_file_alone(tmp_path):
    out = tmp_path / "mine.txt"
    out.write_text("the user's own file")
    with pytest.raises(SystemExit):
        load_script(LAST).main([f"--out_path={out}", f"--data_path={tmp_path / 'missing.txt'}"])
    assert out.read_text() == "the user's own file"


@pytest.mark.parametrize("name", GPT_SCRIPTS)
def test_gpu_sized_defaults_on_a_machine_without_a_gpu_stop_with_the_cpu_sized_command(
        name, monkeypatch, small_text):
    module = refuse_training(load_script(name), monkeypatch)
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: False)  # whatever this machine has
    with pytest.raises(SystemExit) as exit_info:
        module.main([f"--data_path={small_text}", "--out_path="])
    message = exit_info.value.code
    assert message.startswith("error: no GPU found, and these sizes need at least ")
    assert f"try python {name}.py {module.CPU_ARGS}, or pass --device=cpu to run anyway" in message


def test_device_cpu_runs_gpu_sized_defaults_all_the_same(monkeypatch, small_text):
    module = refuse_training(load_script("v5"), monkeypatch)
    with pytest.raises(TrainingStarted):
        module.main([f"--data_path={small_text}", "--out_path=", "--device=cpu"])


@pytest.mark.parametrize("name", SCRIPTS[:4])
def test_cpu_sized_defaults_train_on_a_machine_without_a_gpu(name, monkeypatch, small_text):
    module = refuse_training(load_script(name), monkeypatch)
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingStarted):
        module.main([f"--data_path={small_text}"])


def test_a_progress_line_comes_when_ten_seconds_pass_without_output(monkeypatch, capsys):
    module = load_script(LAST)
    monkeypatch.setattr(module, "max_iters", 1000)
    clock = iter([100.0, 105.0, 111.0, 111.0])  # start, a step 5 s later, another 6 s after that
    monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: next(clock)))  # this module's clock only
    timer = module.StepTimer()
    timer.tick(1)
    assert capsys.readouterr().out == ""
    timer.tick(2)
    assert capsys.readouterr().out == "... step 2/1000 | 5500.0 ms/step, 91 min left\n"


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_loss_that_turns_nan_stops_the_run_naming_the_step(name, tmp_path, small_text, capsys):
    module = load_script(name)
    out = tmp_path / "sample.txt"
    with pytest.raises(SystemExit) as exit_info:
        module.main(tiny_args(module) + ["--learning_rate=1e30", f"--data_path={small_text}", f"--out_path={out}"])
    assert exit_info.value.code.startswith("error: training diverged: the loss is not finite at step 2 (")
    assert "step 2: train loss nan, val loss nan" in capsys.readouterr().out
    assert not out.exists()


def check_run(output, out):
    """What every tiny run prints and writes: its step lines with timings, then the sample."""
    lines = output.splitlines()
    assert lines[0].endswith("parameters, training on cpu")
    step_lines = [line for line in lines if line.startswith("step ")]
    assert [line.split(":")[0] for line in step_lines] == ["step 0", "step 2", "step 4"]
    assert all("train loss" in line and "val loss" in line for line in step_lines)
    assert all(" ms/step, " in line and line.endswith(" s left") for line in step_lines[1:])
    assert lines[len(step_lines) + 1] == f"sample, also written to {out}:"
    sample = out.read_text(encoding="utf-8")
    assert len(sample) == 41  # the start token and 40 sampled
    assert output.endswith(sample + "\n")


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_trains_and_samples_and_writes_nothing_into_the_repository(name, tmp_path, small_text, capsys):
    before = repository_state()
    out = tmp_path / "sample.txt"
    module = load_script(name)
    module.main(tiny_args(module, max_new_tokens=40) + [f"--data_path={small_text}", f"--out_path={out}"])
    check_run(capsys.readouterr().out, out)
    assert repository_state() == before
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("name", [SCRIPTS[0], LAST])
def test_script_runs_from_the_shell(name, tmp_path, small_text):
    out = tmp_path / "sample.txt"
    module = load_script(name)
    result = run_script(name, *tiny_args(module, max_new_tokens=40), f"--data_path={small_text}",
                        f"--out_path={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    check_run(result.stdout, out)


def test_bad_input_from_the_shell_is_one_line_on_stderr_and_status_1(tmp_path):
    result = run_script(LAST, "--max_iters=-5", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    # the script's own output is its last line; torch may warn on import before it (without numpy, say)
    assert result.stderr.endswith("\n") and result.stderr.splitlines()[-1].startswith("error: --max_iters must be")
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_a_run_without_a_traceback(tmp_path, small_text):
    module = load_script("bigram")
    with Started([sys.executable, "-u", str(ROOT / "bigram.py"), *tiny_args(module, max_iters=10**7,
                  eval_interval=10**7), f"--data_path={small_text}"], cwd=tmp_path) as run:
        assert run.line().endswith("parameters, training on cpu\n")
        assert run.line().startswith("step 0:")  # training has begun
        run.process.send_signal(signal.SIGINT)
        code, _, stderr = run.wait()
    assert code == 130
    assert stderr.splitlines()[-1] == "interrupted" and "Traceback" not in stderr
