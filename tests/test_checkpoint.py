"""v8: checkpoints, exact resume, a safe stop, and sampling later."""

import os
import pickle
import re
import shlex
import shutil
import signal
import sys

import pytest
import torch

from conftest import ROOT, Started, load_script, run_main, run_script, tiny_args

NAME = "v8"


def step_lines(output):
    """The step lines of a run, without their timings: what must agree between runs."""
    return [line.split(" |")[0] for line in output.splitlines() if line.startswith("step ")]


def args(module, tmp_path, small_text, **overrides):
    """A tiny run; batches of 32 make the exact evaluation of the small text quick."""
    return tiny_args(module, **{"max_iters": 8, "batch_size": 32, "max_new_tokens": 20, **overrides}) + [
        f"--data_path={small_text}", f"--ckpt_path={tmp_path / 'ckpt.pt'}", f"--out_path={tmp_path / 'sample.txt'}"]


def run(argv, monkeypatch=None, stop_after=None):
    return run_main(NAME, argv, monkeypatch, stop_after)


@pytest.fixture
def v8():
    return load_script(NAME)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, small_text):
    """A finished tiny run: its folder and its output."""
    folder = tmp_path_factory.mktemp("finished")
    code, out, _ = run(args(load_script(NAME), folder, small_text))
    assert code == 0
    return folder, out


@pytest.fixture
def saved_run(finished_run, tmp_path):
    """A copy of the finished run's checkpoint, for this test to use as it likes, and the run's output."""
    folder, out = finished_run
    shutil.copy(folder / "ckpt.pt", tmp_path / "ckpt.pt")
    return tmp_path / "ckpt.pt", out


# ---- saving and resuming ----------------------------------------------------

def test_a_run_saves_its_whole_training_state(v8, saved_run, small_text):
    path, _ = saved_run
    state = torch.load(path, weights_only=True)
    assert set(state) == v8.CHECKPOINT_KEYS
    assert state["step"] == 8
    assert state["hyperparameters"]["n_embd"] == 16 and state["hyperparameters"]["max_iters"] == 8
    text = small_text.read_text(encoding="utf-8")
    assert state["vocab"] == "".join(sorted(set(text)))
    assert len(state["text_sha256"]) == 64
    assert state["rng"]["cpu"].dtype == torch.uint8 and state["optimizer"]["state"]


def test_a_run_reports_what_its_checkpoints_cost(saved_run):
    path, out = saved_run
    line = next(line for line in out.splitlines() if line.startswith("checkpoint "))
    assert re.fullmatch(rf"checkpoint .*ckpt\.pt: [\d.]+ MiB, saved 5 times in [\d.]+ s, the last in [\d.]+ s", line)


def test_saved_weights_load_strictly_into_a_plain_model(v8, saved_run, monkeypatch):
    state = torch.load(saved_run[0], weights_only=True)
    for name, value in state["hyperparameters"].items():
        monkeypatch.setattr(v8, name, value)
    v8.GPTLanguageModel(len(state["vocab"])).load_state_dict(state["model"])  # strict: every key, every shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_a_compiled_run_saves_weights_without_the_compile_prefix(v8, tmp_path, small_text):
    code, _, _ = run(args(v8, tmp_path, small_text, device="cuda", compile=True, max_iters=2))
    assert code == 0
    weights = torch.load(tmp_path / "ckpt.pt", weights_only=True)["model"]
    assert weights and not any(key.startswith("_orig_mod.") for key in weights)


def test_without_a_checkpoint_v8_trains_v7s_run(tmp_path, small_text, capsys):
    v7 = load_script("v7")
    v7.main(tiny_args(v7, max_iters=8, batch_size=32, max_new_tokens=5) + [f"--data_path={small_text}", "--out_path="])
    expected = step_lines(capsys.readouterr().out)
    _, out, _ = run(args(load_script(NAME), tmp_path, small_text, max_new_tokens=5))
    assert [line.split(" (")[0] for line in step_lines(out)] == expected


def test_a_run_stopped_and_resumed_prints_the_step_lines_of_an_unstopped_run(v8, tmp_path, small_text, monkeypatch):
    (tmp_path / "whole").mkdir()
    _, whole, _ = run(args(v8, tmp_path / "whole", small_text))
    code, first, err = run(args(v8, tmp_path, small_text), monkeypatch, stop_after=5)
    assert code == 130
    assert err.splitlines()[0] == "stopping after this step, to save; Ctrl-C again stops at once"
    command = f"python v8.py --resume=True --ckpt_path={tmp_path / 'ckpt.pt'} --data_path={small_text}" \
              " --device=cpu --compile=True"
    assert err.splitlines()[1:] == [f"stopped after step 5; continue with: {command}"]
    code, second, _ = run(shlex.split(command)[2:] + [f"--out_path={tmp_path / 'sample.txt'}"])  # as printed
    assert code == 0
    assert step_lines(first) == step_lines(whole)[:3]  # steps 0, 2, 4
    assert step_lines(second)[0].startswith("step 5: ")  # where the resumed run starts
    assert step_lines(second)[1:] == step_lines(whole)[3:]  # steps 6 and 8, exactly


def test_resume_takes_the_architecture_from_the_checkpoint(v8, saved_run, tmp_path, small_text):
    path, whole = saved_run
    code, out, _ = run([f"--ckpt_path={path}", f"--data_path={small_text}", "--device=cpu", "--resume=True",
                        "--max_iters=10", "--max_new_tokens=5", "--out_path="])
    assert code == 0
    assert out.splitlines()[0] == whole.splitlines()[0]  # the saved run's parameter count, not the defaults'
    assert [line.split(":")[0] for line in step_lines(out)] == ["step 8", "step 10"]
    assert torch.load(path, weights_only=True)["hyperparameters"]["n_embd"] == 16


def test_a_finished_run_resumed_trains_no_further_and_samples(saved_run, tmp_path, small_text):
    path, whole = saved_run
    code, out, _ = run(args(load_script(NAME), tmp_path, small_text) + ["--resume=True"])
    assert code == 0
    assert step_lines(out) == step_lines(whole)[-1:]
    assert torch.load(path, weights_only=True)["step"] == 8


def test_sigterm_from_outside_saves_and_exits_143(v8, tmp_path, small_text):
    with Started([sys.executable, "-u", str(ROOT / f"{NAME}.py"),
                  *args(v8, tmp_path, small_text, max_iters=10**5, eval_interval=10**5)], cwd=tmp_path) as run_:
        assert run_.line().endswith("training on cpu\n")
        assert run_.line().startswith("step 0:")
        run_.process.send_signal(signal.SIGTERM)
        code, _, stderr = run_.wait()
    assert code == 143
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert stderr.splitlines()[-1].startswith(f"stopped after step {state['step']};") and state["step"] > 0
    assert "Traceback" not in stderr


def test_a_second_signal_stops_at_once(v8):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, whatever the shell set
    try:
        with pytest.raises(KeyboardInterrupt):
            with v8.StopSignals() as stop:
                signal.raise_signal(signal.SIGINT)  # to this thread: handled before the call returns
                assert stop.signum == signal.SIGINT  # the first is only noted
                signal.raise_signal(signal.SIGINT)  # to this thread: handled before the call returns
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_whole(v8, saved_run, monkeypatch):
    path, _ = saved_run
    before = path.read_bytes()

    def broken_save(obj, file):
        file.write(b"PK half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(v8.torch, "save", broken_save)
    with pytest.raises(SystemExit) as exit_info:
        v8.save_checkpoint({"step": 9}, str(path))
    assert exit_info.value.code.endswith("No space left on device; the previous checkpoint is intact")
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.tmp"))


def test_a_save_stopped_by_a_signal_midway_leaves_no_partial_file(v8, tmp_path, monkeypatch):
    def interrupted_save(obj, file):
        file.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(v8.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        v8.save_checkpoint({"step": 1}, str(tmp_path / "ckpt.pt"))
    assert list(tmp_path.iterdir()) == []


def test_a_loss_that_turns_nan_keeps_the_last_good_checkpoint(v8, tmp_path, small_text):
    code, _, _ = run(args(v8, tmp_path, small_text, learning_rate=1e30))
    assert code.startswith("error: training diverged: the loss is not finite at step 2")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["step"] == 0 and all(torch.isfinite(w).all() for w in state["model"].values())


def test_resume_applies_this_commands_optimizer_settings_to_the_saved_moments(saved_run, small_text, monkeypatch):
    path, _ = saved_run
    v8 = load_script(NAME)
    seen = []
    real_step = v8.train_step
    monkeypatch.setattr(v8, "train_step", lambda model, optimizer, *rest: (
        seen.append([(g["weight_decay"], g["betas"]) for g in optimizer.param_groups]),
        real_step(model, optimizer, *rest))[1])
    v8.main([f"--ckpt_path={path}", "--resume=True", "--max_iters=9", "--weight_decay=0.5", "--beta2=0.9",
             f"--data_path={small_text}", "--device=cpu", "--out_path=", "--max_new_tokens=1"])
    assert seen == [[(0.5, (0.9, 0.9)), (0.0, (0.9, 0.9))]]
    assert torch.load(path, weights_only=True)["optimizer"]["state"]  # the moments went on


def test_resume_may_not_go_back_before_the_saved_step(saved_run, small_text):
    path, _ = saved_run
    code, _, _ = run([f"--ckpt_path={path}", "--resume=True", "--max_iters=4", f"--data_path={small_text}",
                      "--device=cpu"])
    assert code == f"error: {path} is at step 8: --max_iters=4 would go back"
    assert torch.load(path, weights_only=True)["step"] == 8


def test_the_rules_hold_for_the_saved_values_and_the_given_ones_together(saved_run, small_text):
    path, _ = saved_run
    saved_lr = torch.load(path, weights_only=True)["hyperparameters"]["learning_rate"]
    code, _, _ = run([f"--ckpt_path={path}", "--resume=True", f"--min_lr={saved_lr * 2}",
                      f"--data_path={small_text}", "--device=cpu"])
    assert code.startswith(f"error: --min_lr must be a finite number >= 0 and <= learning_rate ({saved_lr})")


# ---- sampling later ---------------------------------------------------------

def sample_args(path, *extra):
    return [f"--ckpt_path={path}", "--sample_only=True", "--device=cpu", "--max_new_tokens=30", "--out_path=",
            *extra]


def test_sample_only_continues_a_prompt_without_the_text_or_the_architecture(saved_run, tmp_path):
    path, _ = saved_run
    code, out, _ = run(sample_args(path, "--prompt=ROMEO:", f"--data_path={tmp_path / 'gone.txt'}"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{path}: step 8, best val loss {torch.load(path, weights_only=True)['best_val_loss']:.4f};" \
                       " sampling on cpu"
    assert lines[1].startswith("ROMEO:") and len("\n".join(lines[1:])) == len("ROMEO:") + 30


def test_the_same_seed_gives_the_same_sample_and_another_seed_another(saved_run):
    path, _ = saved_run
    samples = [run(sample_args(path, f"--seed={seed}"))[1] for seed in (1, 1, 2)]
    assert samples[0] == samples[1] != samples[2]


def test_top_k_1_is_greedy_whatever_the_seed(saved_run):
    path, _ = saved_run
    samples = {run(sample_args(path, "--top_k=1", f"--seed={seed}", "--temperature=2.0"))[1]
               for seed in (1, 2, 3)}
    assert len(samples) == 1


def test_top_k_limits_sampling_to_the_likeliest_characters(v8, monkeypatch):
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
    code, _, _ = run(args(load_script(NAME), tmp_path, small_text))
    assert code.startswith(f"error: {path} already exists: continue that run with --resume=True")
    assert path.read_bytes() == before


def test_a_file_that_would_run_code_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    path = tmp_path / "ckpt.pt"
    with open(path, "wb") as file:
        pickle.dump({"model": Payload()}, file)
    code, _, _ = run(sample_args(path))
    assert code == f"error: {path} is not a checkpoint that can be loaded safely (UnpicklingError)"
    assert not marker.exists()


BROKEN = {
    "missing": (None, "no checkpoint at"),
    "empty": (b"", "is not a checkpoint that can be loaded safely"),
    "text": (b"just some words", "is not a checkpoint that can be loaded safely"),
    "truncated": ("half", "is not a checkpoint that can be loaded safely"),
    "another kind of file": ({"weights": torch.zeros(2)}, "is not a checkpoint of this series"),
    "weights of another model": ("other weights", "holds weights of another model"),
}


@pytest.mark.parametrize("mode", ["--sample_only=True", "--resume=True"])
@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_or_missing_checkpoint_is_a_one_line_error(case, mode, saved_run, tmp_path, small_text):
    content, message = BROKEN[case]
    path = tmp_path / "broken.pt"
    if content == "half":
        path.write_bytes(saved_run[0].read_bytes()[:5000])
    elif content == "other weights":
        state = torch.load(saved_run[0], weights_only=True)
        torch.save({**state, "model": {"lm_head.weight": torch.zeros(3, 3)}}, path)
    elif isinstance(content, dict):
        torch.save(content, path)
    elif content is not None:
        path.write_bytes(content)
    code, _, _ = run([f"--ckpt_path={path}", mode, f"--data_path={small_text}", "--device=cpu"])
    assert message in code and "\n" not in code


def test_resuming_on_another_text_is_refused(saved_run, tmp_path):
    path, _ = saved_run
    other = tmp_path / "other.txt"
    other.write_text("a different text, long enough for a split " * 50)
    code, _, _ = run([f"--ckpt_path={path}", "--resume=True", f"--data_path={other}", "--device=cpu"])
    assert code.startswith(f"error: {other} is not the text {path} was trained on (other characters)")


def test_resuming_on_the_same_characters_in_another_text_is_refused(saved_run, tmp_path, small_text):
    path, _ = saved_run
    shuffled = tmp_path / "shuffled.txt"
    shuffled.write_text(small_text.read_text(encoding="utf-8")[::-1], encoding="utf-8")
    code, _, _ = run([f"--ckpt_path={path}", "--resume=True", f"--data_path={shuffled}", "--device=cpu"])
    assert "(same characters, other text)" in code


def test_an_architecture_that_contradicts_the_checkpoint_is_refused(saved_run, small_text):
    path, _ = saved_run
    code, _, _ = run([f"--ckpt_path={path}", "--resume=True", f"--data_path={small_text}", "--device=cpu",
                      "--n_layer=3"])
    assert code == f"error: --n_layer=3 contradicts {path}, saved with n_layer=2; leave it out"


def test_prompt_characters_outside_the_vocabulary_are_named(saved_run):
    path, _ = saved_run
    code, _, _ = run(sample_args(path, "--prompt=ROMEO€~"))
    assert code == "error: --prompt has characters the model never saw: '~€'"


@pytest.mark.parametrize("arg, message", [("--temperature=0", "--temperature must be a finite number > 0"),
                                          ("--top_k=-1", "--top_k must be an integer >= 0")])
def test_sampling_settings_out_of_range_are_refused(arg, message, saved_run):
    code, _, _ = run(sample_args(saved_run[0], arg))
    assert code.startswith(f"error: {message}")


def test_resume_and_sample_only_together_are_refused(saved_run):
    code, _, _ = run(sample_args(saved_run[0], "--resume=True"))
    assert code == "error: --resume=True and --sample_only=True: choose one"


def test_a_checkpoint_in_a_missing_directory_is_refused_before_training(tmp_path, small_text):
    v8 = load_script(NAME)
    code, _, _ = run(tiny_args(v8) + [f"--data_path={small_text}", f"--ckpt_path={tmp_path / 'no' / 'ckpt.pt'}"])
    assert code.startswith("error: --ckpt_path=") and "no directory" in code


def test_sample_only_from_the_shell_needs_no_training(saved_run, tmp_path):
    result = run_script(NAME, *sample_args(saved_run[0]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sampling on cpu" in result.stdout.splitlines()[0]
