"""The command line and the input checks: the same plumbing in every script, run as a user runs it."""

import builtins
import math
import os
import pathlib
import runpy
import signal
import sys
import time

import pytest
import torch

from conftest import (CHARACTER_SCRIPTS, GPT_SCRIPTS, ROOT, SCRIPTS, Forked, load_script, run_main, run_script,
                      step_lines, tiny_args)

BANNER = "# ---- the same in every script: command line, device, text, files"
LAST = SCRIPTS[-1]  # the plumbing is the same text everywhere (tested first), so one script shows its behaviour
# every script that ends with the shared block: the series, and the names/ prequel where it is present
ALL = SCRIPTS + sorted(str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "names").glob("*.py"))


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


def error_of(module, monkeypatch, args, capsys):
    """(exit status, what the user reads on stderr) for main(args) with training refused."""
    refuse_training(module, monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        module.main(args)
    code = exit_info.value.code
    return (1, code) if isinstance(code, str) else (code, capsys.readouterr().err)


def test_the_shared_block_is_the_same_text_in_every_script():
    tails = {}
    for name in ALL:
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
def test_help_lists_every_hyperparameter_with_its_comment_and_default(name, capsys):
    module = load_script(name)
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert out.startswith(f"usage: python {name}.py [--name=value ...]")
    assert module.__doc__.splitlines()[0] in out
    for hyperparameter in module.HYPERPARAMETERS:
        assert f"--{hyperparameter} {type(getattr(module, hyperparameter)).__name__}" in out
    assert "independent sequences processed in parallel" in out


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_defaults_pass_the_checks(name):
    module = load_script(name)
    assert module.parse_args([]) == []


def test_a_value_is_typed_by_its_default_in_either_form():
    module = load_script(LAST)
    given = module.parse_args(["--max_iters=7", "--learning_rate", "2", "--device=cpu", "--compile=false"])
    assert given == ["max_iters", "learning_rate", "device", "compile"]  # in the order given
    assert module.max_iters == 7 and isinstance(module.max_iters, int)
    assert module.learning_rate == 2.0 and isinstance(module.learning_rate, float)
    assert module.device == "cpu" and module.compile is False


@pytest.mark.parametrize("text, value", [("True", True), ("true", True), ("1", True),
                                         ("False", False), ("FALSE", False), ("0", False)])
def test_a_boolean_reads_true_false_1_or_0(text, value):
    module = load_script(LAST)
    module.parse_args([f"--compile={text}"])
    assert module.compile is value


BAD_ARGS = {
    "unknown name": (["--not_a_setting=1"], "unrecognized arguments: --not_a_setting=1"),
    "an abbreviation": (["--max_iter=5"], "unrecognized arguments: --max_iter=5"),
    "not --name=value": (["max_iters=5"], "unrecognized arguments: max_iters=5"),
    "no value": (["--max_iters"], "argument --max_iters: expected one argument"),
    "not a number": (["--max_iters=many"], "argument --max_iters: invalid float value: 'many'"),
    "not whole": (["--max_iters=1.5"], "error: --max_iters=1.5: max_iters must be a whole number below 2**31,"
                                       " at least 0"),
    "not a boolean": (["--compile=no"], "argument --compile: invalid choice: 'no'"),
    "learning rate nan": (["--learning_rate=nan"], "error: --learning_rate=nan: learning_rate must be a finite number"),
    "learning rate inf": (["--learning_rate=inf"], "error: --learning_rate=inf: learning_rate must be a finite number"),
    "a size past 2**31": (["--n_embd=100000000000000000000"], "--n_embd=1e+20: n_embd must be a whole number below"),
    "a negative size past 2**31": ([f"--max_iters={-2**40}"], "max_iters must be a whole number below 2**31"),
    "negative max_iters": (["--max_iters=-1"], "error: --max_iters=-1: max_iters must be a whole number below 2**31,"
                                               " at least 0"),
    "batch of none": (["--batch_size=0"], "error: --batch_size=0: batch_size must be a whole number below 2**31,"
                                          " at least 1"),
    "learning rate zero": (["--learning_rate=0"], "--learning_rate must be above 0"),
    "min_lr above the peak": (["--min_lr=0.1"], "need 0 <= --min_lr <= --learning_rate"),
    "beta2 of 1": (["--beta2=1"], "--beta2 < 1"),
    "dropout 1": (["--dropout=1"], "error: --dropout must be at least 0 and below 1, got 1.0"),
    "heads do not divide the width": (["--n_embd=10", "--n_head=3"],
                                      "error: --n_embd=10 must be a multiple of --n_head=3"),
    "seed past 2**31": ([f"--seed={2**31}"], "error: --seed=2147483648: seed must be a whole number below 2**31"),
    "negative sample length": (["--max_new_tokens=-1"], "max_new_tokens must be a whole number below 2**31"),
    "negative temperature": (["--temperature=-0.5"], "error: --temperature=-0.5: temperature must be a finite number,"
                                                     " at least 0.0"),
    "unknown device": (["--device=tpu"], "error: --device=tpu is not here; use auto or one of"),
    "absent device": (["--device=cpu:1"], "error: --device=cpu:1 is not here"),
}


@pytest.mark.parametrize("case", BAD_ARGS)
def test_bad_arguments_stop_before_training_in_at_most_two_lines(case, monkeypatch, capsys, small_text):
    module = load_script(LAST)
    args, message = BAD_ARGS[case]
    code, said = error_of(module, monkeypatch, tiny_args(module) + [f"--data_path={small_text}"] + args, capsys)
    assert code in (1, 2)  # 2 for what argparse refuses, as argparse does; 1 for a value out of range
    assert message in said
    assert len(said.strip().splitlines()) <= 2 and "Traceback" not in said


BAD_DATA = {
    "missing file": (None, "cannot read {path}: no such file"),
    "a directory": ("dir", "cannot read {path}: not a regular file"),
    "a FIFO, which would be read forever": ("fifo", "cannot read {path}: not a regular file"),
    "empty file": (b"", "cannot read {path}: empty"),
    "not UTF-8": (b"caf\xe9 \xff\xfe", "cannot read {path}: not UTF-8 text"),
    "binary that decodes": (b"\x00\x01\x02" * 200, "cannot read {path}: binary"),
    "too short for block_size": (b"x" * 60, "the text is too short: both splits need over block_size=8 characters"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_files_stop_before_training_with_one_line(case, tmp_path, monkeypatch, capsys):
    module = load_script(LAST)
    content, message = BAD_DATA[case]
    path = tmp_path / "data.txt"
    if content == "dir":
        path.mkdir()
    elif content == "fifo":
        os.mkfifo(path)
    elif content is not None:
        path.write_bytes(content)
    code, said = error_of(module, monkeypatch, tiny_args(module) + [f"--data_path={path}"], capsys)
    assert code == 1 and said == "error: " + message.format(path=path)


@pytest.mark.parametrize("form", ["the same path", "another spelling", "a hard link", "a symbolic link"])
def test_an_out_path_that_is_the_training_text_in_any_form_is_refused(form, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data.txt"
    data.write_text("the training text " * 200)
    out = tmp_path / "out.txt"
    if form == "the same path":
        out = data
    elif form == "another spelling":
        out = tmp_path / "." / "data.txt"
    else:
        (os.link if form == "a hard link" else os.symlink)(data, out)
    module = load_script(LAST)
    code, said = error_of(module, monkeypatch, tiny_args(module) + [f"--data_path={data}", f"--out_path={out}"],
                          capsys)
    assert code == 1 and said.startswith(f"error: --out_path={out}")
    assert data.read_text() == "the training text " * 200


@pytest.mark.parametrize("name", ["v4.py", "v9.py", "input.txt", "output.txt", "names/names.txt", "tools/benchmark.py",
                                  "micrograd/engine.py", "README.md"])
def test_an_out_path_that_is_a_file_of_the_project_in_any_folder_is_refused(name, monkeypatch, capsys, small_text):
    module = load_script(LAST)
    before = (ROOT / name).read_bytes()
    code, said = error_of(module, monkeypatch, tiny_args(module) + [f"--data_path={small_text}",
                                                                    f"--out_path={ROOT / name}"], capsys)
    assert code == 1 and said == f"error: --out_path={ROOT / name} exists, and a run writes only new files"
    assert (ROOT / name).read_bytes() == before


def test_a_script_of_names_may_not_write_over_a_script_of_the_series():
    before = (ROOT / "v10.py").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        load_script("names/counts").main(["--device=cpu", f"--out_path={ROOT / 'v10.py'}"])
    assert str(exit_info.value.code).startswith(f"error: --out_path={ROOT / 'v10.py'} exists")
    assert (ROOT / "v10.py").read_bytes() == before


def test_a_file_the_user_had_is_never_written_over(tmp_path, monkeypatch, capsys, small_text):
    mine = tmp_path / "notes.txt"
    mine.write_text("the user's own notes")
    module = load_script(LAST)
    code, said = error_of(module, monkeypatch, tiny_args(module) + [f"--data_path={small_text}", f"--out_path={mine}"],
                          capsys)
    assert code == 1 and "exists" in said and mine.read_text() == "the user's own notes"


def test_the_checkpoint_and_the_sample_may_not_be_one_file(tmp_path, monkeypatch, capsys, small_text):
    module = load_script(LAST)
    same = tmp_path / "both"
    code, said = error_of(module, monkeypatch, tiny_args(module) + [
        f"--data_path={small_text}", f"--ckpt_path={same}", f"--out_path={same}"], capsys)
    assert code == 1 and said == f"error: --out_path={same} is the same file as another output"


@pytest.mark.parametrize("where", ["a directory", "a missing directory", "an unwritable directory"])
def test_an_out_path_that_cannot_be_written_is_refused_before_training(where, tmp_path, monkeypatch, capsys,
                                                                     small_text):
    module = load_script(LAST)
    out = {"a directory": tmp_path, "a missing directory": tmp_path / "no" / "sample.txt",
           "an unwritable directory": tmp_path / "sample.txt"}[where]
    if where == "an unwritable directory":  # root may write anywhere: have the OS say no
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    code, said = error_of(module, monkeypatch, tiny_args(module) + [f"--data_path={small_text}",
                                                                    f"--out_path={out}"], capsys)
    assert code == 1 and said.startswith(f"error: --out_path={out}")
    assert said.endswith({"a directory": "exists, and a run writes only new files",
                          "a missing directory": "is in no folder that exists",
                          "an unwritable directory": "is in a read-only folder"}[where])


def test_bad_input_leaves_an_existing_output_file_alone(tmp_path):
    out = tmp_path / "mine.txt"
    out.write_text("the user's own file")
    module = load_script(LAST)
    with pytest.raises(SystemExit):
        module.main(tiny_args(module) + [f"--out_path={out}", f"--data_path={tmp_path / 'missing.txt'}"])
    assert out.read_text() == "the user's own file"


def test_the_temporary_file_of_a_write_never_replaces_another_file(tmp_path):
    module = load_script(LAST)
    out, other = tmp_path / "sample.txt", tmp_path / f"sample.txt.{os.getpid()}.tmp"
    other.write_text("a file that happens to have the temporary name")
    with pytest.raises(SystemExit, match="File exists"):
        module.write_atomically(str(out), b"the new sample")
    assert other.read_text() == "a file that happens to have the temporary name" and not out.exists()


def test_a_text_named_like_the_outputs_temporary_file_stays_whole(tmp_path, small_text):
    data = tmp_path / "sample.txt.tmp"
    data.write_text(small_text.read_text(encoding="utf-8"), encoding="utf-8")
    module = load_script("bigram")
    code, _, err = run_main("bigram", tiny_args(module, out_path=tmp_path / "sample.txt") + [f"--data_path={data}"])
    assert code == 0, err
    assert data.read_text(encoding="utf-8") == small_text.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.txt", "sample.txt.tmp"]


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    module = load_script(LAST)
    out = tmp_path / "sample.txt"
    out.write_text("the old sample")

    def crash(*args):
        raise KeyboardInterrupt  # Ctrl-C after the new text is written, before the rename

    monkeypatch.setattr(module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        module.write_atomically(str(out), b"the new sample")
    assert out.read_text() == "the old sample"


@pytest.mark.parametrize("name", GPT_SCRIPTS)
def test_gpu_sized_defaults_without_a_gpu_stop_and_point_to_the_cpu_sized_run(name, monkeypatch, capsys, small_text):
    module = load_script(name)
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: False)  # whatever this machine has
    monkeypatch.setattr(module.torch.cuda, "device_count", lambda: 0)
    extra = ["--ckpt_path="] if "ckpt_path" in module.HYPERPARAMETERS else []
    code, said = error_of(module, monkeypatch, [f"--data_path={small_text}", "--out_path="] + extra, capsys)
    assert code == 1 and said.startswith("error: no GPU, and these sizes take hours on a CPU; see --help")
    assert "training on" not in capsys.readouterr().out  # the refusal comes before the run says it trains
    assert "--batch_size=32 --block_size=64 --n_embd=128 --n_head=4 --n_layer=4" in module.__doc__


@pytest.mark.parametrize("name", GPT_SCRIPTS)
def test_the_cpu_sized_run_of_the_docstring_is_accepted_however_slow_the_clock(name, monkeypatch, small_text):
    module = load_script(name)
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(module.torch.cuda, "device_count", lambda: 0)
    clock = iter(range(0, 10**9, 3600))  # an hour passes at every look: a machine under any load
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(time, "time", lambda: next(clock))
    command = next(line for line in module.__doc__.splitlines() if "--batch_size=32" in line)
    args = command.split()[2:] + [f"--data_path={small_text}", "--out_path=", "--ckpt_path="]
    with pytest.raises(TrainingStarted):
        refuse_training(module, monkeypatch).main([a for a in args if a.split("=")[0][2:] in module.HYPERPARAMETERS])


def test_device_cpu_runs_gpu_sized_defaults_all_the_same(monkeypatch, small_text):
    module = refuse_training(load_script("v5"), monkeypatch)
    with pytest.raises(TrainingStarted):
        module.main([f"--data_path={small_text}", "--out_path=", "--device=cpu"])


@pytest.mark.parametrize("name", SCRIPTS[:4])
def test_cpu_sized_defaults_train_on_a_machine_without_a_gpu(name, monkeypatch, small_text):
    module = refuse_training(load_script(name), monkeypatch)
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(module.torch.cuda, "device_count", lambda: 0)
    with pytest.raises(TrainingStarted):
        module.main([f"--data_path={small_text}"])


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_loss_that_turns_nan_stops_the_run_with_one_error_line(name, tmp_path, small_text):
    module = load_script(name)
    out = tmp_path / "sample.txt"
    code, stdout, stderr = run_main(name, tiny_args(module, learning_rate=1e30, warmup_iters=0) + [
        f"--data_path={small_text}", f"--out_path={out}"])
    assert code == 1
    assert stderr.startswith("error: the loss is not finite at step 2;") and stderr.count("\n") == 1
    assert [line.split(":")[0] for line in step_lines(stdout)] == ["step 0"]  # step 2's line is the error
    assert not out.exists()


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_trains_and_samples_and_writes_nothing_into_the_repository(name, tmp_path, small_text, capsys):
    before = repository_state()
    out = tmp_path / "sample.txt"
    module = load_script(name)
    module.main(tiny_args(module, max_new_tokens=40, out_path=out) + [f"--data_path={small_text}"])
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("parameters, training on cpu"))
    assert [line.split(":")[0] for line in lines[start + 1:start + 4]] == ["step 0", "step 2", "step 4"]
    sample = out.read_text(encoding="utf-8")
    assert "\n".join(lines[start + 4:]) == sample
    assert len(sample) == 41 if name in CHARACTER_SCRIPTS else sample  # the start token and 40 sampled
    assert repository_state() == before
    assert list(tmp_path.iterdir()) == [out]


def test_from_another_folder_the_script_finds_its_text_and_writes_only_where_told(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main("bigram", tiny_args(load_script("bigram"), out_path="s.txt"))
    assert code == 0, err
    assert out.startswith("4,900 parameters")  # the bigram table of input.txt's 70 characters: 70 x 70
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.txt"]


def test_bad_input_from_the_shell_is_two_lines_at_most_and_no_traceback(tmp_path):
    result = run_script(LAST, "--max_iter=5", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 2  # usage and error: no warning of torch's at import (numpy)
    assert "Traceback" not in result.stderr


OUT_OF_MEMORY = {  # what torch raises, on the CPU and on a GPU, when an allocation fails
    "cpu": (RuntimeError, "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory:"
                          " you tried to allocate 8000000000000 bytes. Error code 12 (Cannot allocate memory)",
            "8000000000000 bytes"),
    "cuda": (torch.OutOfMemoryError, "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of"
                                     " 79.19 GiB of which 1.06 GiB is free.", "2.00 GiB"),
}


@pytest.mark.parametrize("where", OUT_OF_MEMORY)
def test_out_of_memory_is_one_line_that_names_the_size(where, small_text, monkeypatch):
    """The __main__ guard is handed the error torch raises: no test asks the allocator for terabytes."""
    kind, message, size = OUT_OF_MEMORY[where]

    def allocation_fails(*args, **kwargs):
        raise kind(message)

    monkeypatch.setattr(torch, "manual_seed", allocation_fails)  # the first call of torch's in main
    monkeypatch.setattr(sys, "argv", ["bigram.py", *tiny_args(load_script("bigram")), f"--data_path={small_text}"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "bigram.py"), run_name="__main__")  # as `python bigram.py` runs it
    assert exit_info.value.code == f"error: out of memory (tried to allocate {size}); try smaller sizes"


def test_another_runtime_error_keeps_its_traceback(small_text, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("a bug, not a size")

    monkeypatch.setattr(torch, "manual_seed", fails)
    monkeypatch.setattr(sys, "argv", ["bigram.py", *tiny_args(load_script("bigram")), f"--data_path={small_text}"])
    with pytest.raises(RuntimeError, match="a bug, not a size"):
        runpy.run_path(str(ROOT / "bigram.py"), run_name="__main__")


def test_ctrl_c_stops_a_run_without_a_traceback(tmp_path, small_text):
    module = load_script("bigram")
    with Forked(ROOT / "bigram.py", [*tiny_args(module, max_iters=10**7, eval_interval=10**7),
                                     f"--data_path={small_text}"], cwd=tmp_path) as run:
        assert run.line().endswith("parameters, training on cpu\n")
        assert run.line().startswith("step 0:")  # training has begun
        run.process.send_signal(signal.SIGINT)
        code, _, stderr = run.wait()
    assert code == 130
    assert stderr == ""


def test_the_step_lines_of_v8_give_the_val_loss_in_bits_per_character(small_text):
    module = load_script("v8")
    _, out, _ = run_main("v8", tiny_args(module) + [f"--data_path={small_text}"])
    line = next(line for line in out.splitlines() if line.startswith("step 4:"))
    nats = float(line.split("val loss ")[1].split()[0])
    bits = float(line.split("(")[1].split(" bits/char")[0])
    assert bits == pytest.approx(nats / math.log(2), abs=1e-3)
