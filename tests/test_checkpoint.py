"""v8: checkpoints, exact resume, a safe stop, and sampling later."""

import hashlib
import io
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, Forked, Started, as_read, load_script, run_main, step_lines, tiny_args

NAME = "v8"

STOPPING = "stopping after this step, to save; Ctrl-C again stops at once\n"  # on stderr, as the signal comes


def args(tmp_path, small_text, **overrides):
    """A tiny run; batches of 32 make the exact evaluation of the small text quick."""
    return tiny_args(load_script(NAME), **{"max_iters": 8, "batch_size": 32, "max_new_tokens": 20,
                                           "ckpt_path": tmp_path / "ckpt.pt", **overrides}) + [
        f"--data_path={small_text}"]


def run(argv, monkeypatch=None, stop_after=None):
    return run_main(NAME, argv, monkeypatch, stop_after)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, small_text):
    """A finished tiny run: its folder and its output."""
    folder = tmp_path_factory.mktemp("finished")
    code, out, err = run(args(folder, small_text))
    assert code == 0, err
    return folder, out


@pytest.fixture
def saved_run(finished_run, tmp_path):
    """A copy of the finished run's checkpoint, for this test to use as it likes, and the run's output."""
    folder, out = finished_run
    shutil.copy(folder / "ckpt.pt", tmp_path / "ckpt.pt")
    return tmp_path / "ckpt.pt", out


def sample_args(path, *extra):
    return [f"--ckpt_path={path}", "--sample_only=True", "--device=cpu", "--max_new_tokens=30", *extra]


def write_checkpoint(path, state):
    """A file as the scripts save one: torch.save's bytes, then their SHA-256."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue() + hashlib.sha256(buffer.getvalue()).digest())


# ---- saving and resuming ----------------------------------------------------

def test_a_run_saves_its_whole_training_state(saved_run, small_text):
    state = torch.load(saved_run[0], weights_only=True)
    assert set(state) == {"script", "model", "optimizer", "scaler", "step", "rng", "hyperparameters", "vocab",
                          "text_sha256"}
    assert state["script"] == "v8.py" and state["step"] == 8
    assert state["hyperparameters"]["n_embd"] == 16 and state["hyperparameters"]["max_iters"] == 8
    assert state["vocab"] == "".join(sorted(set(small_text.read_text(encoding="utf-8"))))
    assert len(state["text_sha256"]) == 64
    assert state["rng"]["cpu"].dtype == torch.uint8 and state["optimizer"]["state"]
    assert "device" not in state["hyperparameters"] and "out_path" not in state["hyperparameters"]  # per command
    assert state["scaler"] == {}  # float32 on the CPU: no loss scale to keep


def test_the_file_ends_with_the_sha256_of_what_torch_saved(saved_run):
    saved = saved_run[0].read_bytes()
    assert hashlib.sha256(saved[:-32]).digest() == saved[-32:]


def test_by_default_each_script_keeps_its_own_checkpoint_beside_it():
    assert [load_script(name).ckpt_path for name in ("v8", "v9", "v10")] == [str(ROOT / f"{name}.pt")
                                                                           for name in ("v8", "v9", "v10")]


def test_saving_leaves_no_temporary_file_only_the_checkpoint_and_its_lock(saved_run, finished_run):
    assert sorted(p.name for p in finished_run[0].iterdir()) == ["ckpt.pt", "ckpt.pt.lock"]


def test_saved_weights_load_strictly_into_a_plain_model(saved_run, monkeypatch):
    v8 = load_script(NAME)
    state = torch.load(saved_run[0], weights_only=True)
    for name, value in state["hyperparameters"].items():
        monkeypatch.setattr(v8, name, value)
    v8.GPTLanguageModel(len(state["vocab"])).load_state_dict(state["model"])  # strict: every key, every shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_a_compiled_run_saves_weights_without_the_compile_prefix(tmp_path, small_text):
    code, _, err = run(args(tmp_path, small_text, device="cuda", compile=True, max_iters=2))
    assert code == 0, err
    weights = torch.load(tmp_path / "ckpt.pt", weights_only=True)["model"]
    assert weights and not any(key.startswith("_orig_mod.") for key in weights)


def test_without_a_checkpoint_v8_trains_v7s_run(finished_run, small_text):
    v7 = load_script("v7")
    _, out, _ = run_main("v7", tiny_args(v7, max_iters=8, batch_size=32) + [f"--data_path={small_text}"])
    assert step_lines(finished_run[1]) == step_lines(out)


def test_a_run_stopped_and_resumed_prints_the_step_lines_of_an_unstopped_run(finished_run, tmp_path, small_text,
                                                                             monkeypatch):
    first_args = args(tmp_path, small_text, out_path=tmp_path / "sample.txt")
    code, first, err = run(first_args, monkeypatch, stop_after=5)
    assert code == 130 and err == STOPPING
    lines = first.splitlines()
    assert lines[-2].startswith("step 5: train loss ")  # the stop evaluates the step it saves
    command = shlex.join([sys.executable, os.path.relpath(ROOT / "v8.py"), *as_read(first_args), "--resume=True"])
    assert lines[-1] == f"continue with: {command}"  # every option of the first run, the sample's path too
    code, second, err = run(shlex.split(command)[2:])  # as printed
    assert code == 0, err
    whole = step_lines(finished_run[1])
    assert step_lines(first)[:-1] == whole[:3]  # steps 0, 2, 4, then the stop's step 5
    assert step_lines(second) == whole[3:]  # steps 6 and 8, exactly
    assert (tmp_path / "sample.txt").read_text(encoding="utf-8") in second


def test_resume_takes_the_architecture_from_the_checkpoint(saved_run, small_text):
    path, whole = saved_run
    code, out, err = run([f"--ckpt_path={path}", f"--data_path={small_text}", "--device=cpu", "--resume=True",
                          "--max_iters=10", "--max_new_tokens=5"])
    assert code == 0, err
    parameters = [line for line in out.splitlines() if line.endswith("parameters, training on cpu")]
    assert parameters == [whole.splitlines()[1]]  # the saved run's parameter count, not the defaults'
    assert [line.split(":")[0] for line in step_lines(out)] == ["step 8", "step 10"]
    assert torch.load(path, weights_only=True)["hyperparameters"]["n_embd"] == 16


def test_resume_applies_this_commands_optimizer_settings_to_the_saved_moments(saved_run, small_text, monkeypatch):
    path, _ = saved_run
    seen = []
    real = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: (
        seen.append([(g["weight_decay"], g["betas"]) for g in self.param_groups]), real(self, *a, **k))[1])
    code, _, err = run([f"--ckpt_path={path}", "--resume=True", "--max_iters=9", "--weight_decay=0.5", "--beta2=0.9",
                        f"--data_path={small_text}", "--device=cpu", "--max_new_tokens=1"])
    assert code == 0, err
    assert seen == [[(0.5, (0.9, 0.9)), (0.0, (0.9, 0.9))]]
    assert torch.load(path, weights_only=True)["optimizer"]["state"]  # the moments went on


@pytest.mark.parametrize("max_iters", [8, 5])
def test_a_run_resumed_at_or_past_max_iters_says_there_is_nothing_left_and_samples(max_iters, saved_run, small_text,
                                                                                     tmp_path):
    path, whole = saved_run
    before = path.read_bytes()
    code, out, err = run([f"--ckpt_path={path}", "--resume=True", f"--data_path={small_text}", "--device=cpu",
                          f"--max_iters={max_iters}", "--max_new_tokens=10", f"--out_path={tmp_path / 'sample.txt'}"])
    assert code == 0, err
    assert f"{path}: nothing left to train up to --max_iters={max_iters}; a larger one goes further" in out.splitlines()
    assert not step_lines(out) and path.read_bytes() == before  # nothing trained, nothing saved
    sample = (tmp_path / "sample.txt").read_text(encoding="utf-8")
    assert len(sample) == 11 and out.endswith(sample + "\n")  # token 0 and 10 more


def test_the_checks_hold_for_the_saved_values_and_the_given_ones_together(saved_run, small_text):
    path, _ = saved_run
    saved_lr = torch.load(path, weights_only=True)["hyperparameters"]["learning_rate"]
    code, _, err = run([f"--ckpt_path={path}", "--resume=True", f"--min_lr={saved_lr * 2}",
                        f"--data_path={small_text}", "--device=cpu"])
    assert code == 1 and err.startswith("error: need 0 <= --min_lr <= --learning_rate")


def test_a_value_the_checkpoint_agrees_with_is_checked_against_the_checkpoints_others(saved_run):
    """n_embd=16 with the default n_head=6 would not split into heads; with the saved n_head=2 it does."""
    code, out, err = run(sample_args(saved_run[0], "--n_embd=16"))
    assert code == 0, err


def test_resume_and_sample_only_without_a_ckpt_path_name_it(small_text):
    for mode in ("--resume=True", "--sample_only=True"):
        code, _, err = run(["--ckpt_path=", mode, f"--data_path={small_text}", "--device=cpu"])
        assert code == 1 and err.startswith("error: --ckpt_path=: no checkpoint there")


def test_sigterm_from_outside_saves_and_exits_143(tmp_path, small_text):
    with Forked(ROOT / f"{NAME}.py", args(tmp_path, small_text, max_iters=10**5, eval_interval=1),
                cwd=tmp_path) as started:
        first = [started.line() for _ in range(5)]  # the start-up line, the parameters, steps 0, 1 and 2
        assert first[1].endswith("training on cpu\n") and first[4].startswith("step 2:")
        started.process.send_signal(signal.SIGTERM)  # while training: step 2 is saved, and printed after its save
        code, rest, stderr = started.wait()
    assert code == 143 and stderr == STOPPING
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["step"] >= 2  # the step it ended, saved
    assert step_lines("".join(first) + rest)[-1].startswith(f"step {state['step']}: train loss")


def test_a_second_signal_stops_at_once(tmp_path, small_text, monkeypatch):
    """The first Ctrl-C is only noted; the second acts as Python's own handler does."""
    v8 = load_script(NAME)
    real_get_batch, calls = v8.get_batch, []

    def get_batch(*a):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return real_get_batch(*a)

    monkeypatch.setattr(v8, "get_batch", get_batch)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, whatever the shell set
    try:
        with pytest.raises(KeyboardInterrupt):
            v8.main(args(tmp_path, small_text))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"] == 0  # the last save, whole


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_whole(saved_run, small_text, monkeypatch):
    path, _ = saved_run
    before = path.read_bytes()
    v8 = load_script(NAME)

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(v8.os, "replace", full_disk)
    with pytest.raises(SystemExit, match=f"^error: cannot write {path}: No space left on device$"):
        v8.write_atomically(str(path), b"PK half a checkpoint")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"]  # what the failed write wrote is gone


def test_a_loss_that_turns_nan_keeps_the_last_good_checkpoint(tmp_path, small_text):
    code, _, err = run(args(tmp_path, small_text, learning_rate=1e30, warmup_iters=0, eval_interval=2))
    assert code == 1 and err.startswith("error: the loss is not finite at step 2")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["step"] == 0 and all(torch.isfinite(w).all() for w in state["model"].values())


# ---- sampling later ---------------------------------------------------------

def test_sample_only_continues_a_prompt_without_the_text_or_the_architecture(saved_run, tmp_path):
    path, _ = saved_run
    code, out, err = run(sample_args(path, "--prompt=ROMEO:", f"--data_path={tmp_path / 'gone.txt'}"))
    assert code == 0, err
    lines = out.splitlines()
    assert f"{path}: saved at step 8" in lines[:2]
    assert lines[3].startswith("ROMEO:") and len("\n".join(lines[3:])) == len("ROMEO:") + 30


def test_sample_only_wins_over_resume(saved_run, small_text):
    path, _ = saved_run
    code, out, err = run(sample_args(path, "--resume=True", f"--data_path={small_text}"))
    assert code == 0, err
    assert not step_lines(out)


def test_the_same_seed_gives_the_same_sample_and_another_seed_another(saved_run):
    samples = [run(sample_args(saved_run[0], f"--seed={seed}"))[1] for seed in (1, 1, 2)]
    assert samples[0] == samples[1] != samples[2]


def test_top_k_1_is_greedy_whatever_the_seed(saved_run):
    samples = {run(sample_args(saved_run[0], "--top_k=1", f"--seed={seed}", "--temperature=2.0"))[1]
               for seed in (1, 2, 3)}
    assert len(samples) == 1


def test_top_k_limits_sampling_to_the_likeliest_characters(monkeypatch):
    v8 = load_script(NAME)
    for name, value in dict(block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0).items():
        monkeypatch.setattr(v8, name, value)
    torch.manual_seed(0)
    model = v8.GPTLanguageModel(20).eval()
    context = torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        likeliest = set(torch.topk(model(context)[0][0, -1], 3).indices.tolist())
    firsts = {model.generate(context, 1, temperature=5.0, top_k=3)[0, 1].item() for _ in range(200)}
    assert firsts == likeliest


# ---- bad input: one line, a non-zero exit, nothing overwritten --------------

def test_a_fresh_run_does_not_overwrite_a_saved_run(saved_run, tmp_path, small_text):
    path, _ = saved_run
    before = path.read_bytes()
    code, _, err = run(args(tmp_path, small_text))
    assert code == 1 and err.startswith(f"error: {path} exists: go on with --resume=True")
    assert path.read_bytes() == before


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's, before it refuses the file
def test_a_file_that_would_run_code_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    path = tmp_path / "ckpt.pt"
    payload = pickle.dumps({"model": Payload()})  # with its SHA-256 after it, as a checkpoint ends
    path.write_bytes(payload + hashlib.sha256(payload).digest())
    code, _, err = run(sample_args(path))
    assert code == 1 and err == f"error: {path}: holds objects that loading would have to run as code\n"
    assert not marker.exists()


NO_CHECKPOINT = "no checkpoint there, or one changed since it was saved"
BROKEN = {
    "missing": (None, NO_CHECKPOINT),
    "empty": (b"", NO_CHECKPOINT),
    "text": (b"just some words", NO_CHECKPOINT),
    "truncated": ("half", NO_CHECKPOINT),
    "16 bytes altered": ("altered", NO_CHECKPOINT),
    "saved without its SHA-256": ("plain torch.save", NO_CHECKPOINT),
    "another kind of file": ({"weights": torch.zeros(2)}, "a checkpoint of another program, not of v8.py"),
    "not a dict": ([1, 2, 3], "a checkpoint of another program, not of v8.py"),
    "another script's": ("v10.py", "a checkpoint of v10.py, not of v8.py"),
    "a key missing": ("no step", "a checkpoint of v8.py without a valid 'step'"),
    "a key of the wrong type": ("text step", "a checkpoint of v8.py without a valid 'step'"),
    "weights of another model": ("other weights", "holds the weights of another model"),
}


@pytest.mark.parametrize("mode", ["--sample_only=True", "--resume=True"])
@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_or_missing_checkpoint_is_a_one_line_error(case, mode, saved_run, tmp_path, small_text):
    content, message = BROKEN[case]
    path = tmp_path / "broken.pt"
    saved, state = saved_run[0].read_bytes(), torch.load(saved_run[0], weights_only=True)
    if content == "half":
        path.write_bytes(saved[:5000])
    elif content == "altered":
        path.write_bytes(saved[:3000] + bytes(16) + saved[3016:])
    elif content == "plain torch.save":
        torch.save(state, path)
    elif isinstance(content, (dict, list)):
        write_checkpoint(path, content)
    elif content is not None and not isinstance(content, bytes):
        changes = {"other weights": {"model": {"lm_head.weight": torch.zeros(3, 3)}}, "v10.py": {"script": "v10.py"},
                   "text step": {"step": "8"}}.get(content, {})
        write_checkpoint(path, {key: value for key, value in {**state, **changes}.items() if content != "no step"
                                or key != "step"})
    elif content is not None:
        path.write_bytes(content)
    code, _, err = run([f"--ckpt_path={path}", mode, f"--data_path={small_text}", "--device=cpu"])
    assert code == 1 and message in err and err.count("\n") == 1


@pytest.mark.parametrize("other", ["another text", "the same characters in another order"])
def test_resuming_on_another_text_is_refused(other, saved_run, tmp_path, small_text):
    path, _ = saved_run
    text = small_text.read_text(encoding="utf-8")
    data = tmp_path / "other.txt"
    data.write_text("a different text, long enough for a split " * 50 if other == "another text" else text[::-1])
    code, _, err = run([f"--ckpt_path={path}", "--resume=True", f"--data_path={data}", "--device=cpu"])
    assert code == 1 and err.startswith(f"error: {data} is not the text {path} was trained on")


def test_an_architecture_that_contradicts_the_checkpoint_is_refused(saved_run, small_text):
    path, _ = saved_run
    code, _, err = run([f"--ckpt_path={path}", "--resume=True", f"--data_path={small_text}", "--device=cpu",
                        "--n_head=4"])  # the same weight shapes, another model
    assert code == 1 and err == f"error: {path} holds a model with --n_head=2; leave --n_head out\n"


def test_prompt_characters_outside_the_vocabulary_are_named(saved_run):
    code, _, err = run(sample_args(saved_run[0], "--prompt=ROMEO€~"))
    assert code == 1 and err == "error: --prompt has characters the model never saw: ~€\n"


@pytest.mark.parametrize("arg, message", [("--temperature=-1", "--temperature=-1: temperature must be a finite number"),
                                          ("--top_k=-1", "--top_k=-1: top_k must be a whole number")])
def test_sampling_settings_out_of_range_are_refused(arg, message, saved_run):
    code, _, err = run(sample_args(saved_run[0], arg))
    assert code == 1 and err.startswith(f"error: {message}")


# ---- one run at a time, a full disk, a closed pipe ------------------------------

def holding_the_lock(path):
    """A process that holds path's lock while it lives, as a run on it does (fcntl.lockf on path.lock)."""
    code = (f"import fcntl, sys, time\nlock = open({str(path) + '.lock'!r}, 'a')\n"
            "fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)\nprint('held', flush=True)\ntime.sleep(60)\n")
    started = Started([sys.executable, "-c", code])
    assert started.line() == "held\n"
    return started


@pytest.mark.parametrize("mode", ["fresh", "resumed"])
def test_a_second_run_on_a_checkpoint_another_run_holds_stops_in_one_line(mode, saved_run, tmp_path, small_text):
    path = saved_run[0] if mode == "resumed" else tmp_path / "new.pt"
    before = path.read_bytes() if path.exists() else None
    with holding_the_lock(path):
        code, out, err = run(args(tmp_path, small_text, ckpt_path=path) + ["--resume=True"] * (mode == "resumed"))
    assert code == 1 and err == f"error: {path} is in use by another run, which holds {path}.lock\n"
    assert (path.read_bytes() if path.exists() else None) == before and not step_lines(out)


def test_the_lock_of_a_run_that_died_blocks_no_later_run(saved_run, small_text):
    path = saved_run[0]
    with holding_the_lock(path) as holder:
        holder.process.kill()  # as a crash ends it: the system drops its lock
        holder.process.wait(timeout=30)
    code, out, err = run([f"--ckpt_path={path}", "--resume=True", "--max_iters=10", f"--data_path={small_text}",
                          "--device=cpu", "--max_new_tokens=1"])
    assert code == 0, err
    assert [line.split(":")[0] for line in step_lines(out)] == ["step 8", "step 10"]


def test_a_save_past_the_file_size_limit_ends_in_one_line_and_keeps_the_last_checkpoint(finished_run, tmp_path,
                                                                                          small_text):
    """A full disk, as RLIMIT_FSIZE gives it to the process (EFBIG): the step-0 save fits, the others do not."""
    shutil.copy(finished_run[0] / "ckpt.pt", tmp_path / "ckpt.pt")
    before = (tmp_path / "ckpt.pt").read_bytes()
    limit = len(before) + 1000  # room for a checkpoint of this size, not for a growing one: Adam's moments
    argv = [f"--ckpt_path={tmp_path / 'ckpt.pt'}", "--resume=True", "--max_iters=12", f"--data_path={small_text}",
            "--device=cpu", "--eval_interval=2", "--n_embd=16"]
    shutil.copy(tmp_path / "ckpt.pt", tmp_path / "fresh.pt")
    with Forked(ROOT / "v8.py", argv, file_size_limit=limit // 2) as started:
        code, _, stderr = started.wait(timeout=60)
    assert code == 1
    assert stderr == f"error: cannot write {tmp_path / 'ckpt.pt'}: File too large\n"
    assert (tmp_path / "ckpt.pt").read_bytes() == before  # the last good checkpoint, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "ckpt.pt.lock", "fresh.pt"]  # no .tmp left


def test_a_closed_stdout_ends_the_run_quietly_with_the_steps_checkpoint_saved(tmp_path, small_text):
    """`python v8.py | head -3`: the reader goes after the start-up line, the parameters and step 0."""
    with Forked(ROOT / "v8.py", args(tmp_path, small_text, max_iters=10**5, eval_interval=1), read=False) as started:
        lines = [started.process.stdout.readline() for _ in range(3)]
        started.process.stdout.close()  # as head does once it has its lines
        code, stderr = started.process.wait(timeout=60), started.process.stderr.read()
    assert lines[2].startswith("step 0:")
    assert code == 141 and stderr == ""  # as a process ended by SIGPIPE, without a traceback
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"] >= 1  # the step it stopped at, saved


def test_sampling_into_a_closed_pipe_ends_quietly(saved_run):
    with Forked(ROOT / "v8.py", sample_args(saved_run[0])[:-1] + ["--max_new_tokens=20000"], read=False) as started:
        started.process.stdout.readline()
        started.process.stdout.close()
        code, stderr = started.process.wait(timeout=60), started.process.stderr.read()
    assert code == 141 and stderr == ""


# ---- a saved run and an edited file; the command it prints ----------------------

def test_a_run_saved_with_a_setting_the_file_has_since_dropped_samples_and_resumes(tmp_path, small_text):
    """A learner adds a line at the top, trains, then takes the line out again."""
    script = tmp_path / "v8.py"
    original = (ROOT / "v8.py").read_text(encoding="utf-8")
    script.write_text(original.replace("\nHYPERPARAMETERS = ", "\nlabel_smoothing = 0.1  # mine, for a while\n"
                                                               "HYPERPARAMETERS = ", 1), encoding="utf-8")
    assert run_main(script, args(tmp_path, small_text, max_iters=4))[0] == 0
    script.write_text(original, encoding="utf-8")
    for mode in ("--sample_only=True", "--resume=True"):
        code, out, err = run_main(script, [f"--ckpt_path={tmp_path / 'ckpt.pt'}", f"--data_path={small_text}",
                                           "--device=cpu", mode, "--max_iters=6", "--max_new_tokens=5"])
        assert code == 0 and err == "", err
        assert f"{tmp_path / 'ckpt.pt'}: dropped, no longer in v8.py: label_smoothing" in out.splitlines()


def test_on_resume_one_line_lists_each_saved_value_that_overrides_the_file(saved_run, small_text):
    code, out, err = run([f"--ckpt_path={saved_run[0]}", "--resume=True", f"--data_path={small_text}",
                          "--device=cpu", "--max_new_tokens=1", "--batch_size=32"])
    assert code == 0, err
    kept = next(line for line in out.splitlines() if "saved values in force over the file's" in line)
    assert "max_iters: 8 saved, 2000 in the file" in kept and "eval_interval: 2 saved, 100 in the file" in kept
    assert "batch_size" not in kept  # given on this command line: its value wins, and it is no override


def test_the_printed_command_of_a_run_started_from_another_folder_pastes_into_a_shell(tmp_path, small_text):
    """`--resume True` in its space form, from another folder: the command names the script as invoked."""
    (work := tmp_path / "work").mkdir()
    script = os.path.relpath(ROOT / "v8.py", work)
    with Forked(script, args(tmp_path, small_text, max_iters=10**5, eval_interval=1), cwd=work) as started:
        assert [started.line() for _ in range(4)][3].startswith("step 1:")
        started.process.send_signal(signal.SIGINT)
        code, rest, stderr = started.wait()
    assert code == 130 and stderr == STOPPING
    command = rest.splitlines()[-1].removeprefix("continue with: ")
    assert command.startswith(shlex.join([sys.executable, script])) and command.endswith(" --resume=True")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"]
    result = subprocess.run(command.replace("--max_iters=100000", f"--max_iters={saved + 1}"), shell=True, cwd=work,
                            capture_output=True, text=True, timeout=60)  # as pasted, with an end in sight
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'ckpt.pt'}: saved at step {saved}" in result.stdout.splitlines()
    assert [line.split(":")[0] for line in step_lines(result.stdout)] == [f"step {saved}", f"step {saved + 1}"]


# ---- sampling: greedy at temperature 0 ----------------------------------------------

def test_temperature_0_takes_the_likeliest_token_every_time(saved_run):
    samples = {run(sample_args(saved_run[0], "--temperature=0", f"--seed={seed}"))[1] for seed in (1, 2)}
    assert len(samples) == 1  # no draw: the seed does not matter
    assert samples == {run(sample_args(saved_run[0], "--top_k=1", "--seed=3"))[1]}  # the likeliest of all


def test_any_positive_temperature_samples_without_overflow(saved_run):
    code, out, err = run(sample_args(saved_run[0], "--temperature=1e-300"))
    assert code == 0, err


# ---- float16 ------------------------------------------------------------------------

def test_a_float16_run_stopped_and_resumed_prints_the_unstopped_runs_step_lines(tmp_path, small_text, monkeypatch):
    (tmp_path / "whole").mkdir()
    float16 = ["--dtype=float16"]
    code, whole, err = run(args(tmp_path / "whole", small_text) + float16)
    assert code == 0, err
    assert torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=True)["scaler"]["scale"] > 0  # the scale, saved
    code, first, _ = run(args(tmp_path, small_text) + float16, monkeypatch, stop_after=5)
    assert code == 130
    code, second, err = run(args(tmp_path, small_text) + float16 + ["--resume=True"])
    assert code == 0, err
    assert step_lines(first)[:-1] + step_lines(second) == step_lines(whole)


def test_a_dangling_link_as_the_checkpoint_path_is_refused_and_left_alone(tmp_path, small_text):
    """A link to a file that does not exist is still a file of the user's: a fresh run does not replace it."""
    (tmp_path / "link.pt").symlink_to(tmp_path / "nowhere.pt")
    code, out, err = run(args(tmp_path, small_text, ckpt_path=tmp_path / "link.pt"))
    assert code == 1 and err.startswith(f"error: {tmp_path / 'link.pt'} exists: go on with --resume=True")
    assert (tmp_path / "link.pt").is_symlink() and not (tmp_path / "nowhere.pt").exists() and not step_lines(out)
