"""v9: one run on many processes (gloo on the CPU), always in processes of their own, never in pytest's."""

import os
import shlex
import shutil
import signal
import socket
import sys
import time

import pytest
import torch

from conftest import ROOT, Forked, Started, as_read, load_script, run_main, tiny_args

NAME = "v9"
SCRIPT = str(ROOT / f"{NAME}.py")


def args(folder, small_text, **overrides):
    """A tiny run without dropout (each process draws its own masks), saving into folder."""
    module = load_script(NAME)
    return tiny_args(module, **{"max_iters": 8, "batch_size": 32, "dropout": 0.0, "max_new_tokens": 20,
                                **overrides}) + [
        f"--data_path={small_text}", f"--ckpt_path={folder / 'ckpt.pt'}", f"--out_path={folder / 'sample.txt'}"]


def run_here(argv, monkeypatch=None, stop_after=None):
    """One process, as `python v9.py` runs: main() in a fresh module. Returns (exit code, stdout)."""
    code, out, _ = run_main(NAME, argv, monkeypatch, stop_after)
    return code, out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, processes=2):
    """`python v9.py argv` in each of `processes` processes, with the variables torchrun gives them (forked from
    this one, which has imported torch: a real launcher is in the tests that name torchrun)."""
    port = free_port()
    return [Forked(SCRIPT, argv, env={"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(processes),
                                      "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
            for rank in range(processes)]


def finish(processes, timeout=60):
    """Each process's (exit code, stdout, stderr), in rank order; none is left running."""
    try:
        return [process.wait(timeout) for process in processes]
    finally:
        for process in processes:
            process.__exit__()


def losses(output):
    """[(step, train loss, val loss)] of each step line."""
    rows = []
    for line in output.splitlines():
        if line.startswith("step "):
            words = line.replace(",", "").split()
            rows.append((int(words[1].rstrip(":")), float(words[4]), float(words[7])))
    return rows


def assert_same_run(got, expected):
    assert [s for s, _, _ in got] == [s for s, _, _ in expected]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected, dtype=torch.float64).float(),
                               rtol=0, atol=2e-4)  # 4 printed decimals, summed in another order


def launch_on_two_machines(argv):
    """`torchrun --nnodes=2 --nproc_per_node=1` twice, as on two machines that meet at one address (c10d
    rendezvous): each launcher starts one process of the run."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{free_port()}", "--rdzv_id=test"]
    return [Started(launcher + [SCRIPT, *argv]) for _ in range(2)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_text):
    """A tiny run in one process to step 8, and the same run stopped at step 4 in one process and taken on to step 8
    by two launchers of one process each, as on two machines: each with its checkpoint at step 8."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    code, one_out = run_here(args(one, small_text))
    assert code == 0
    with pytest.MonkeyPatch.context() as monkeypatch:  # stopped as by Ctrl-C while step 4 draws its batch
        assert run_here(args(two, small_text), monkeypatch, stop_after=4)[0] == 130
    results = finish(launch_on_two_machines(args(two, small_text) + ["--resume=True"]))
    assert [code for code, _, _ in results] == [0, 0], results[0][2] + results[1][2]
    results.sort(key=lambda result: result[1] == "")  # the launcher of process 0 first: it alone prints
    return {"one": (one, one_out), "two": (two, results)}


def test_two_processes_on_two_machines_take_a_one_process_run_on_as_one_process_would(runs):
    (_, one_out), (_, results) = runs["one"], runs["two"]
    assert [step for step, _, _ in losses(one_out)] == [0, 2, 4, 6, 8]
    assert_same_run(losses(results[0][1]), losses(one_out)[2:])  # steps 4 (as saved), 6 and 8


def test_a_run_resumed_on_another_number_of_processes_says_its_dropout_draws_afresh(runs):
    _, results = runs["two"]
    assert "saved by 1 processes, resumed by 2: dropout draws afresh\n" in results[0][1]


def test_two_processes_stopped_and_resumed_go_on_exactly_with_dropout(tmp_path, small_text):
    """Each process's random state is saved and handed back to it: the default dropout draws the same masks as an
    unstopped run's. A constant step size (no warmup, min_lr = learning_rate) makes a run to step 4 the first half
    of a run to step 8."""
    (tmp_path / "whole").mkdir()
    constant = {"warmup_iters": 0, "min_lr": load_script(NAME).learning_rate}
    whole = finish(start(args(tmp_path / "whole", small_text, dropout=0.2, **constant)))
    first = finish(start(args(tmp_path, small_text, dropout=0.2, max_iters=4, **constant)))
    second = finish(start(args(tmp_path, small_text, dropout=0.2, **constant) + ["--resume=True", "--out_path="]))
    assert [code for code, _, _ in whole + first + second] == [0] * 6, second[0][2]
    assert losses(first[0][1]) + losses(second[0][1])[1:] == losses(whole[0][1])  # step 4 printed by both halves


def test_only_process_0_prints(runs):
    _, results = runs["two"]
    assert results[0][1].splitlines()[0].endswith("saved at step 4")
    assert results[1][1] == ""


def test_a_checkpoint_of_two_processes_resumes_in_one(runs, tmp_path, small_text):
    resumed = {}
    for name in ("one", "two"):  # the one-process checkpoint is the reference
        shutil.copy(runs[name][0] / "ckpt.pt", tmp_path / f"{name}.pt")
        code, out = run_here([f"--ckpt_path={tmp_path / f'{name}.pt'}", "--resume=True", "--max_iters=12",
                              "--out_path=", f"--data_path={small_text}", "--device=cpu"])
        assert code == 0
        resumed[name] = losses(out)
    assert_same_run(resumed["two"], resumed["one"])
    assert [step for step, _, _ in resumed["one"]] == [8, 10, 12]


def test_the_saved_weights_carry_no_ddp_prefix(runs):
    weights = torch.load(runs["two"][0] / "ckpt.pt", weights_only=True)["model"]
    assert weights and not any(key.startswith("module.") for key in weights)


def test_one_process_stopped_and_resumed_goes_on_exactly_with_dropout(tmp_path, small_text, monkeypatch):
    """Its own dropout masks and the batches' generator both go on where they stopped."""
    (tmp_path / "whole").mkdir()
    _, whole = run_here(args(tmp_path / "whole", small_text, dropout=0.2))
    code, first = run_here(args(tmp_path, small_text, dropout=0.2), monkeypatch, stop_after=3)
    assert code == 130 and losses(first)[-1][0] == 3  # the stop evaluates the step it saves
    code, second = run_here(args(tmp_path, small_text, dropout=0.2) + ["--resume=True"])
    assert code == 0
    assert losses(first)[:-1] + losses(second) == losses(whole)


def test_a_signal_to_one_process_stops_all_of_them_at_the_same_step(tmp_path, small_text):
    argv = args(tmp_path, small_text, max_iters=10**5, eval_interval=10**5)
    processes = start(argv)
    try:
        assert processes[0].line().startswith("cpu: torch.float32")  # the start-up line
        assert processes[0].line().endswith("training on cpu\n")
        assert processes[0].line().startswith("step 0:")  # both are training
        processes[1].process.send_signal(signal.SIGTERM)
    finally:  # the processes end with the test, whatever failed
        results = finish(processes, timeout=30)
    assert [code for code, _, _ in results] == [143, 143], results[1][2]
    step = torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"]
    command = shlex.join(["torchrun", "--standalone", "--nproc_per_node=2", os.path.relpath(SCRIPT), *as_read(argv),
                          "--resume=True"])
    assert results[0][1].splitlines()[-1] == f"continue with: {command}"
    assert results[0][1].splitlines()[-2].startswith(f"step {step}: train loss")  # the step both stopped after
    assert results[1][1] == "" and results[1][2] == ""  # one voice


def test_under_torchrun_a_second_signal_only_asks_again(monkeypatch, capsys):
    """torchrun passes the terminal's Ctrl-C on to processes that the terminal has sent it to already: that second
    SIGINT must not end a process before it saves (torchrun itself ends them, after its --shutdown_timeout)."""
    module = load_script(NAME)
    monkeypatch.setattr(module, "WORLD_SIZE", 2)
    with module.stop_requests() as asked:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # a plain run stops here, with a KeyboardInterrupt
    assert asked == [signal.SIGINT, signal.SIGINT]
    assert capsys.readouterr().err == "stopping after this step, to save\n"


def test_a_batch_that_does_not_split_into_equal_shares_is_refused(tmp_path, small_text, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")  # as torchrun --nproc_per_node=4 sets it, read when the script loads
    code, out, err = run_main(NAME, args(tmp_path, small_text, batch_size=30))
    assert code == 1 and err == "error: --batch_size=30 won't split into 4 equal shares, one for each process\n"


def test_sampling_is_refused_under_torchrun(runs, tmp_path, small_text, monkeypatch):
    shutil.copy(runs["one"][0] / "ckpt.pt", tmp_path / "ckpt.pt")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, out, err = run_main(NAME, [f"--ckpt_path={tmp_path / 'ckpt.pt'}", "--sample_only=True", "--device=cpu"])
    assert code == 1 and err == "error: --sample_only=True samples in one process: run it with python, not torchrun\n"


def worker_pids(launcher_pid):
    """The processes torchrun started for a run: v9.py's processes among its children."""
    children = open(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read().split()
    return [int(pid) for pid in children if SCRIPT in open(f"/proc/{pid}/cmdline").read()]


def test_a_process_that_dies_ends_the_whole_run_under_torchrun(tmp_path, small_text):
    with Started([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", SCRIPT,
                  *args(tmp_path, small_text, max_iters=10**5, eval_interval=10**5, dist_timeout=20)]) as launcher:
        assert launcher.line().startswith("cpu: torch.float32")  # the start-up line
        assert launcher.line().endswith("training on cpu\n")
        assert launcher.line().startswith("step 0:")
        workers = worker_pids(launcher.process.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        killed = time.monotonic()
        code, _, stderr = launcher.wait(timeout=60)
    assert code != 0
    assert time.monotonic() - killed < 20  # well before the process-group timeout
