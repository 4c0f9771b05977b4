"""The command line: imports without side effects, --name=value overrides, runs, and bad input."""

import builtins
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPTS, load_script

TINY_ARGS = {
    "bigram": ["--eval_iters=1"],
    "v2": ["--eval_iters=1", "--n_embd=16"],
    "v3": ["--eval_iters=1", "--n_embd=16", "--n_head=2"],
    "v4": ["--eval_iters=1", "--n_embd=16", "--n_head=2", "--n_layer=1"],
    "v5": ["--eval_iters=1", "--n_embd=16", "--n_head=2", "--n_layer=1"],
    "v6": ["--warmup_iters=2", "--n_embd=16", "--n_head=2", "--n_layer=1"],
}
WRITES_SAMPLE = ["v5", "v6"]
RUN_ARGS = ["--device=cpu", "--batch_size=4", "--block_size=8", "--max_iters=4",
            "--eval_interval=2", "--max_new_tokens=40"]


def run(name, *args, cwd):
    return subprocess.run([sys.executable, str(ROOT / f"{name}.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def repository_state():
    """Every file under the repository root with its size and modification time."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in ROOT.rglob("*")
            if path.is_file() and ".git" not in path.parts and "__pycache__" not in path.parts}


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
def test_hyperparameters_are_the_top_of_file_names(name):
    module = load_script(name)
    assert {"batch_size", "block_size", "max_iters", "eval_interval", "learning_rate",
            "device", "data_path", "seed"} <= set(module.HYPERPARAMETERS)
    assert all(isinstance(getattr(module, n), (int, float, str)) for n in module.HYPERPARAMETERS)


def test_overrides_are_cast_to_the_type_of_the_default(script):
    script.apply_overrides(["--max_iters=7", "--learning_rate=2", "--device=cpu"])
    assert script.max_iters == 7 and isinstance(script.max_iters, int)
    assert script.learning_rate == 2.0 and isinstance(script.learning_rate, float)
    assert script.device == "cpu"


BAD_ARGS = {
    "unknown name": (["--not_a_setting=1"], "valid: --name=value with name one of"),
    "no value": (["--max_iters"], "unknown argument"),
    "wrong type": (["--max_iters=1.5"], "expects a value of type int"),
    "negative max_iters": (["--max_iters=-1"], "max_iters must be >= 0"),
    "unknown device": (["--device=tpu"], "not available"),
    "malformed device": (["--device=cpu:x"], "not a device name"),
    "learning rate not positive": (["--learning_rate=0"], "learning_rate > 0"),
}


@pytest.mark.parametrize("case", BAD_ARGS)
def test_bad_arguments_exit_with_a_one_line_message(script, case):
    args, message = BAD_ARGS[case]
    with pytest.raises(SystemExit) as exit_info:
        script.main(args)
    assert isinstance(exit_info.value.code, str)  # a message: exit status 1, no traceback
    assert message in exit_info.value.code and "\n" not in exit_info.value.code


BAD_DATA = {
    "missing file": (None, "no data file"),
    "empty file": (b"", "is empty"),
    "too short for block_size in the val split": (b"x" * 60, "too short for block_size=8"),
    "shorter than one block": (b"tiny", "too short for block_size=8"),
    "not UTF-8": (b"caf\xe9 \xff\xfe", "is not UTF-8"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_files_exit_with_a_one_line_message(script, case, tmp_path):
    content, message = BAD_DATA[case]
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        script.main([f"--data_path={path}", "--block_size=8", "--device=cpu"])
    assert isinstance(exit_info.value.code, str)
    assert message in exit_info.value.code and "\n" not in exit_info.value.code


@pytest.mark.parametrize("arg", ["--min_lr=-1", "--weight_decay=-0.1", "--grad_clip=-1", "--beta2=1.0"])
def test_v6_rejects_optimizer_settings_adamw_would_refuse(arg):
    with pytest.raises(SystemExit) as exit_info:
        load_script("v6").main([arg])
    assert "must be >= 0, and beta2 in [0, 1)" in exit_info.value.code


@pytest.mark.parametrize("name", WRITES_SAMPLE)
def test_bad_input_leaves_an_existing_output_file_alone(name, tmp_path):
    out = tmp_path / "mine.txt"
    out.write_text("the user's own file")
    with pytest.raises(SystemExit):
        load_script(name).main([f"--out_path={out}", f"--data_path={tmp_path / 'missing.txt'}"])
    assert out.read_text() == "the user's own file"


@pytest.mark.parametrize("name", WRITES_SAMPLE)
def test_an_out_path_in_a_missing_directory_is_refused(name, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        load_script(name).main([f"--out_path={tmp_path / 'no' / 'such' / 'dir.txt'}"])
    assert "no directory" in exit_info.value.code


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_end_to_end_and_writes_nothing_into_the_repository(name, tmp_path, small_text):
    before = repository_state()
    out = tmp_path / "sample.txt"
    extra = [f"--out_path={out}"] if name in WRITES_SAMPLE else []
    result = run(name, *RUN_ARGS, *TINY_ARGS[name], f"--data_path={small_text}", *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("parameters, training on cpu")
    step_lines = [line for line in lines if line.startswith("step ")]
    assert [line.split(":")[0] for line in step_lines] == ["step 0", "step 2", "step 4"]
    assert all("train loss" in line and "val loss" in line for line in step_lines)
    sample = "\n".join(lines[lines.index(step_lines[-1]) + 1:])
    assert len(sample) >= 20
    if name in WRITES_SAMPLE:
        assert len(out.read_text(encoding="utf-8")) == 41  # the start token and 40 sampled
        assert lines[-1] == f"sample written to {out}"
    assert repository_state() == before
    assert list(tmp_path.iterdir()) == ([out] if name in WRITES_SAMPLE else [])


# Every script exits through the same sys.exit(message) lines, checked in-process above;
# here the first and the last of the series show what a shell sees.
@pytest.mark.parametrize("name", [SCRIPTS[0], SCRIPTS[-1]])
def test_bad_input_from_the_shell_is_one_line_on_stderr_and_status_1(name, tmp_path):
    result = run(name, "--max_iters=-5", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    # the script's own output is its last line; torch may warn on import before it (without numpy, say)
    assert result.stderr.endswith("\n") and result.stderr.splitlines()[-1].startswith("error: max_iters must be")
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
