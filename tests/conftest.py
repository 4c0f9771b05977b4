"""Shared helpers: load a script as a fresh module, shrink it to a CPU-sized model, run it."""

import contextlib
import faulthandler
import functools
import importlib.util
import inspect
import io
import os
import queue
import resource
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
import torch

sys.dont_write_bytecode = True  # importing the scripts leaves no __pycache__ beside them
# Tiny models gain nothing from a second thread, and torch's threads slow badly when the
# machine is busy: one thread here and in the scripts the tests start keeps the suite steady.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["bigram", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13"]  # in order
CHARACTER_SCRIPTS = SCRIPTS[:SCRIPTS.index("v10")]  # a token is a character; from v10 on, a byte pair
ATTENTION_SCRIPTS = SCRIPTS[1:]
GPT_SCRIPTS = SCRIPTS[4:]  # the full model, at a GPU's size
LECTURE_GPT_SCRIPTS = SCRIPTS[4:10]  # v5-v10, the lecture's block: LayerNorm, dropout, N(0, 0.02) initialisation
MODERN_SCRIPTS = SCRIPTS[10:]  # v11 on: RoPE, RMSNorm, ReLU^2, no biases, zero-initialised output projections
FAST_SCRIPTS = SCRIPTS[5:]  # v6 on: bf16 autocast, torch.compile, TF32 and the GPU set for them
RECIPE_SCRIPTS = SCRIPTS[6:]  # v7 on: the schedule, weight decay on 2-D weights, fused AdamW, exact val loss

# Small values for every hyperparameter that makes the model or a run large.
TINY = {
    "batch_size": 4,
    "block_size": 8,
    "n_embd": 16,
    "n_head": 2,
    "n_layer": 2,
    "eval_iters": 2,
    "warmup_iters": 2,
    "max_new_tokens": 20,
    "ckpt_path": "",  # v8 on: no checkpoint unless a test asks for one, and never one in the repository
}


@pytest.fixture(autouse=True)
def no_test_waits_forever():
    """A test still running after two minutes ends the whole session with every thread's traceback: a hang
    fails the suite instead of holding it (pytest's own tools, nothing to install)."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@functools.lru_cache(maxsize=None)
def compiled(path, mtime, size):
    """The code of the file at path as it was at (mtime, size): each file is compiled once, not once a test."""
    return compile(path.read_bytes(), str(path), "exec")


def load_script(name):
    """Import ROOT/name.py (or the file at the Path name) as a new module object, independent of earlier imports."""
    path = name if isinstance(name, Path) else ROOT / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    exec(compiled(path, path.stat().st_mtime_ns, path.stat().st_size), module.__dict__)  # as exec_module would
    return module


def shrink(module, monkeypatch, **overrides):
    """Set the module's own hyperparameters to TINY (and overrides) where it has them."""
    for name, value in {**TINY, **overrides}.items():
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)
    return module


def tiny_args(module, **overrides):
    """--name=value for TINY (and overrides) where the module has the name: a run of a second or two.
    The sample goes nowhere and no checkpoint is kept unless the overrides say where."""
    values = {**TINY, "max_iters": 4, "eval_interval": 2, "eval_iters": 1, "device": "cpu", "out_path": "",
              **overrides}
    return [f"--{name}={value}" for name, value in values.items() if name in module.HYPERPARAMETERS]


def as_read(argv):
    """--name=value arguments as a run reads them and prints them back: each name once, where it first came, with
    its last value."""
    values = dict(arg.split("=", 1) for arg in argv)
    return [f"{name}={value}" for name, value in values.items()]


def batch_drawer(module):
    """module.get_batch as a function of the data alone: from v9 on, batches come from a generator of their own."""
    if "generator" not in inspect.signature(module.get_batch).parameters:
        return module.get_batch
    generator = torch.Generator().manual_seed(0)
    return lambda data: module.get_batch(data, generator)


def run_training(module, model, train_data, val_data):
    """module.train(model, train_data, val_data), given what v8 on also take: a fresh run's state (nothing saved
    in it, the tests' checkpoint path being ''), no stop asked for, and from v10 on the val split's length."""
    later = {"val_chars": len(val_data), "state": {}, "asked": []}
    parameters = inspect.signature(module.train).parameters
    return module.train(model, train_data, val_data, **{name: later[name] for name in later if name in parameters})


def generated(model, context, max_new_tokens, **options):
    """model.generate's answer as the context extended by the new tokens: v13 yields them one by one."""
    out = model.generate(context, max_new_tokens, **options)
    return out if isinstance(out, torch.Tensor) else torch.cat([context, *out], dim=1)


def model_class(module):
    return getattr(module, "GPTLanguageModel", None) or module.BigramLanguageModel


def step_lines(output):
    """The step lines of a run without their timings: what must agree between runs."""
    return [line.split(" |")[0] for line in output.splitlines() if line.startswith("step ")]


def run_script(name, *args, cwd, timeout=60):
    """`python name.py args...` in cwd, as a user runs it."""
    return subprocess.run([sys.executable, str(ROOT / f"{name}.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


class Started:
    """A command started for a test, its output read line by line with a time limit: a test that
    waits for a line that never comes fails instead of hanging. Killed at the end of the with block."""

    def __init__(self, command, **kwargs):
        # Ctrl-C reaches the command as it reaches a user's, even where this shell ignores it (nohup, &)
        self.process = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the end of the output

    def line(self, timeout=30):
        return self.lines.get(timeout=timeout)

    def wait(self, timeout=30):
        """(exit status, the rest of stdout, all of stderr) once the process has ended."""
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=timeout)
        rest = "".join(iter(self.lines.get_nowait, None))
        return code, rest, self.process.stderr.read()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.process.kill()
        self.process.wait()


class ForkedProcess:
    """What a test asks of a subprocess.Popen, for a child that os.fork made."""

    def __init__(self, pid, stdout, stderr):
        self.pid, self.stdout, self.stderr, self.returncode = pid, stdout, stderr, None

    def send_signal(self, signum):
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"fork {self.pid}", timeout)
            else:
                time.sleep(0.01)
        return self.returncode


class Forked(Started):
    """Started's `python -u script args`, run in a fork of this process instead: torch is imported here already, so the
    run starts at once rather than after seconds of imports. The child runs the script as __main__, as python does,
    and leaves with its exit status, skipping pytest's clean-up."""

    def __init__(self, script, args, env=None, cwd=None, file_size_limit=None, read=True):
        """env: variables added to this process's; file_size_limit: RLIMIT_FSIZE in bytes, as of a full disk;
        read=False leaves process.stdout to the test, unread."""
        (out, out_end), (err, err_end) = os.pipe(), os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.dup2(out_end, 1)
                os.dup2(err_end, 2)
                for fd in (out, out_end, err, err_end):  # the pipes' ends now 1 and 2: a reader that closes is seen
                    os.close(fd)
                sys.stdout, sys.stderr = (io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), write_through=True)
                                          for fd in (1, 2))  # unbuffered, as python -u's
                os.environ.update(env or {})
                os.chdir(cwd or os.getcwd())
                if file_size_limit:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
                signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a new process
                sys.argv = [str(script), *map(str, args)]
                sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # the script's folder, as python puts it
                runpy.run_path(str(script), run_name="__main__")
                code = 0
            except SystemExit as exit_info:
                code = exit_info.code if isinstance(exit_info.code, int) else 0 if exit_info.code is None else 1
                if isinstance(exit_info.code, str):
                    print(exit_info.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os._exit(code)
        os.close(out_end)
        os.close(err_end)
        self.process = ForkedProcess(pid, open(out), open(err))
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self.read, daemon=True)
        if read:
            self.reader.start()


class SignalReachedPytest(Exception):
    """A SIGINT that the script under test did not take over."""


def run_main(name, argv, monkeypatch=None, stop_after=None):
    """main(argv) of a fresh module (ROOT/name.py, or the file at the Path name) in this process; with stop_after=k,
    a real SIGINT arrives while training step k draws its batch (a guard turns it into a failed test if the script
    does not catch it). Returns (exit code, stdout, stderr)."""
    module = load_script(name)
    if stop_after is not None:
        real_get_batch, calls = module.get_batch, []

        def get_batch(*args):
            calls.append(1)
            if len(calls) == stop_after:
                signal.raise_signal(signal.SIGINT)  # to this thread: handled before the call returns
            return real_get_batch(*args)

        monkeypatch.setattr(module, "get_batch", get_batch)

    def guard(signum, frame):
        raise SignalReachedPytest

    previous = signal.signal(signal.SIGINT, guard)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                module.main(argv)
                code = 0
            except SystemExit as exit_info:
                code = exit_info.code
                if isinstance(code, str):  # sys.exit("error: ...") prints the message to stderr
                    print(code, file=sys.stderr)
                    code = 1
    finally:
        signal.signal(signal.SIGINT, previous)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def small_text(tmp_path_factory):
    """The first 20,000 characters of input.txt: enough for a few steps, quick to evaluate in full."""
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text((ROOT / "input.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return path


def v5_weights_for_v6(state):
    """v5's state dict in v6's layout: each block's per-head query, key and value weights stacked
    into one qkv matrix; v5's causal-mask buffers dropped (v6 asks the attention kernel instead)."""
    out = {}
    for key, value in state.items():
        if ".heads." not in key:
            out[key] = value
        elif key.endswith(".heads.0.query.weight"):
            prefix = key.removesuffix("heads.0.query.weight")
            n_heads = sum(k.startswith(prefix + "heads.") and k.endswith(".query.weight") for k in state)
            out[prefix + "qkv.weight"] = torch.cat([state[f"{prefix}heads.{h}.{part}.weight"]
                                                    for part in ("query", "key", "value")
                                                    for h in range(n_heads)])
    return out


@pytest.fixture(params=SCRIPTS)
def script(request, monkeypatch):
    """Each script in turn, shrunk to TINY, with dropout off so that outputs are deterministic."""
    return shrink(load_script(request.param), monkeypatch, dropout=0.0)


@pytest.fixture(params=CHARACTER_SCRIPTS)
def character_script(request, monkeypatch):
    return shrink(load_script(request.param), monkeypatch, dropout=0.0)


@pytest.fixture(params=ATTENTION_SCRIPTS)
def attention_script(request, monkeypatch):
    return shrink(load_script(request.param), monkeypatch, dropout=0.0)
