"""The CUDA half, checked on a CPU: a GPU is made to look present by its device properties (a T4, a V100, an A100,
an H100), and torch's own checks and capability logic run on top: _get_device_index on every device argument,
get_device_capability and is_bf16_supported on the properties, autocast's and GradScaler's own validation. A device
without an index where one is needed, an index past the GPUs, a backend a GPU cannot use, bfloat16 on a GPU that
only emulates it, a GPU the build has no kernels for: each fails here as it would on the GPU. Tensors stay on the
CPU."""

import inspect
import runpy
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.utils._triton
from torch.cuda._utils import _get_device_index

from conftest import (FAST_SCRIPTS, RECIPE_SCRIPTS, ROOT, SCRIPTS, load_script, model_class, run_main, shrink,
                      step_lines, tiny_args)

# (name, compute capability) as torch.cuda.get_device_properties describes them
GPUS = {"T4": ("Tesla T4", 7, 5), "V100": ("Tesla V100-SXM2-16GB", 7, 0), "A100": ("NVIDIA A100-SXM4-80GB", 8, 0),
        "H100": ("NVIDIA H100 80GB HBM3", 9, 0), "P100": ("Tesla P100-PCIE-16GB", 6, 0)}
# the kernels in torch 2.13's builds (its PYTORCH_RELEASES_CODE_CC): CUDA 12.6 from sm_50, 12.9 and 13.x from sm_75
CUDA_12_6 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
CUDA_13_0 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


class FakeCuda:
    """A machine with `count` GPUs of one kind, as torch.cuda describes them, under a build with `arch_list`'s
    kernels; what the scripts asked of it is kept in `asked`, the devices tensors went to in `placed`."""

    def __init__(self, monkeypatch, count, gpu="H100", arch_list=CUDA_13_0, triton=True):
        self.count, self.current, self.asked, self.placed = count, 0, [], []
        self.gpu = GPUS[gpu]
        torch.cuda._check_bf16_tensor_supported.cache_clear()  # is_bf16_supported's memory of other tests' GPUs
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_device_properties", self.properties)
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch_list))
        monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: triton)  # what Inductor asks
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: self.index(device) and 0)
        monkeypatch.setattr(torch, "set_float32_matmul_precision", lambda precision: self.asked.append(precision))
        for factory in ("tensor", "zeros"):  # what the scripts make on their device before and after training
            monkeypatch.setattr(torch, factory, self.made_on_the_cpu(getattr(torch, factory)))
        real_module_to = nn.Module.to

        def module_to(module, *args, **kwargs):
            device = torch._C._nn._parse_to(*args, **kwargs)[0]  # torch's own reading of .to()'s arguments
            return module if self.place(device) else real_module_to(module, *args, **kwargs)

        monkeypatch.setattr(nn.Module, "to", module_to)

    def made_on_the_cpu(self, factory):
        def make(*args, device=None, **kwargs):
            self.place(device)
            return factory(*args, **kwargs)

        return make

    def index(self, device, optional=True):
        """torch's check of a device argument (ValueError for 'cuda' without an index where one is needed),
        then this machine's: the index must name one of its GPUs."""
        index = _get_device_index(device, optional=optional)
        assert 0 <= index < self.count, f"no GPU {index} on a machine of {self.count}"
        return index

    def properties(self, device=None):
        """What torch.cuda.get_device_properties says of a GPU: torch's get_device_capability, get_device_name and
        is_bf16_supported read it."""
        self.index(device)
        name, major, minor = self.gpu
        return SimpleNamespace(name=name, major=major, minor=minor)

    def set_device(self, device):
        self.current = self.index(device, optional=False)
        self.asked.append(("set_device", self.current))

    def place(self, device):
        """Whether device is a GPU (then checked and kept in `placed`): a bare index is one, as torch reads it."""
        device = torch.device("cuda", device) if isinstance(device, int) else device
        if device is None or torch.device(device).type != "cuda":
            return False
        self.placed.append(self.index(torch.device(device)))
        return True


def reached_training(name, monkeypatch, *args):
    """main() of a tiny run at --device=auto, its training replaced by a note that it started; returns the
    arguments training got. Sampling and what follows training run as they do on a GPU."""
    module = load_script(name)
    started = []

    def train(*arguments, **keywords):
        started.append(arguments)
        return 0  # v8 on: no signal stopped the run

    monkeypatch.setattr(module, "train", train)
    module.main(tiny_args(module, device="auto") + list(args))
    return started


# ---- every script: the GPU it is given ---------------------------------------

@pytest.mark.parametrize("name", SCRIPTS)
def test_with_a_gpu_present_auto_trains_on_gpu_0_and_sets_it(name, monkeypatch, small_text, capsys):
    cuda = FakeCuda(monkeypatch, count=2)
    assert reached_training(name, monkeypatch, f"--data_path={small_text}")
    assert cuda.placed and set(cuda.placed) == {0}  # the model, the data and the sample's context: on GPU 0
    if name in FAST_SCRIPTS:  # v6 on: compiled kernels are built for the device set here, with TF32
        assert ("set_device", 0) in cuda.asked and "high" in cuda.asked
    assert "training on cuda:0" in capsys.readouterr().out


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_gpu_named_on_the_command_line_is_used_with_its_index(name, device, monkeypatch, small_text):
    cuda = FakeCuda(monkeypatch, count=2)
    assert reached_training(name, monkeypatch, f"--data_path={small_text}", f"--device={device}")
    assert set(cuda.placed) == {torch.device(device).index or 0}


def test_a_gpu_past_the_machines_is_refused_in_one_line(monkeypatch, small_text, capsys):
    FakeCuda(monkeypatch, count=2)
    module = load_script("v10")
    with pytest.raises(SystemExit) as exit_info:
        module.main(tiny_args(module, device="cuda:2") + [f"--data_path={small_text}"])
    assert exit_info.value.code == "error: --device=cuda:2 is not here; use auto or one of cuda:0, cuda:1, cpu"


def test_the_check_fails_for_a_device_without_an_index_as_set_device_does(monkeypatch):
    """What stopped v6 to v10 at launch on a GPU: torch.cuda.set_device(torch.device("cuda"))."""
    cuda = FakeCuda(monkeypatch, count=1)
    with pytest.raises(ValueError, match="Expected a torch.device with a specified index"):
        torch.cuda.set_device(torch.device("cuda"))
    torch.cuda.set_device(torch.device("cuda:0"))
    assert cuda.asked == [("set_device", 0)]


@pytest.mark.parametrize("name", ["v9", "v10"])
def test_under_torchrun_each_process_takes_its_local_gpu_and_joins_over_nccl(name, monkeypatch, small_text):
    for variable, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(variable, value)  # process 1 of 2, as torchrun starts it
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # process 1 sends its stdout to /dev/null: pytest's comes back
    cuda = FakeCuda(monkeypatch, count=2)
    joined = []
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: joined.append((backend, kwargs)))
    assert reached_training(name, monkeypatch, f"--data_path={small_text}")
    assert [backend for backend, _ in joined] == ["nccl"]
    assert joined[0][1]["timeout"].total_seconds() == 300  # dist_timeout
    assert ("set_device", 1) in cuda.asked and set(cuda.placed) == {1}


# ---- a build without kernels for the GPU --------------------------------------

@pytest.mark.parametrize("gpu, arch_list, works", [
    ("V100", CUDA_13_0, False),  # compute 7.0: the default wheels start at sm_75
    ("P100", CUDA_13_0, False),
    ("V100", CUDA_12_6, True),  # the fix: the CUDA 12.6 build
    ("T4", CUDA_13_0, True),  # 7.5: sm_75 itself
    ("H100", CUDA_12_6, True),  # 9.0: sm_90
    ("A100", ["sm_75"], False),  # a kernel for 7.5 runs on 7.x only, never on another major version
])
@pytest.mark.parametrize("name", ["bigram", "v5"])  # every script on a GPU, float32 included
def test_a_gpu_the_build_has_no_kernels_for_stops_in_one_line_that_names_the_fix(gpu, arch_list, works, name,
                                                                                   monkeypatch, small_text):
    FakeCuda(monkeypatch, count=1, gpu=gpu, arch_list=arch_list)
    if works:
        assert reached_training(name, monkeypatch, f"--data_path={small_text}")
        return
    major, minor = GPUS[gpu][1:]
    with pytest.raises(SystemExit) as exit_info:
        reached_training(name, monkeypatch, f"--data_path={small_text}")
    assert exit_info.value.code == (f"error: this PyTorch has no kernels for compute {major}.{minor}; install its CUDA"
                                    " 12.6 build: pip install torch --index-url https://download.pytorch.org/whl/cu126")


def test_a_minor_version_past_the_builds_runs_its_major_versions_kernels(monkeypatch):
    module = load_script("bigram")
    FakeCuda(monkeypatch, count=1, gpu="A100", arch_list=["sm_75"])
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(
        name="a GPU of compute 7.9", major=7, minor=9))
    assert module.pick_device("auto") == torch.device("cuda:0")


# ---- v6 on: the dtype, the loss scaler and torch.compile, by GPU --------------

# what each GPU gets at --dtype=auto: the dtype, loss scaling, and the start-up line
CHOOSING = ["v6", "v9", "v13"]  # the first to choose by GPU, the first on many processes, the last: the same code
BY_GPU = {
    "T4": (torch.float16, "cuda:0 (Tesla T4, compute 7.5): torch.float16 with loss scaling; torch.compile on"),
    "V100": (torch.float16, "cuda:0 (Tesla V100-SXM2-16GB, compute 7.0): torch.float16 with loss scaling;"
                            " torch.compile on"),
    "A100": (torch.bfloat16, "cuda:0 (NVIDIA A100-SXM4-80GB, compute 8.0): torch.bfloat16; torch.compile on"),
    "H100": (torch.bfloat16, "cuda:0 (NVIDIA H100 80GB HBM3, compute 9.0): torch.bfloat16; torch.compile on"),
}


@pytest.mark.parametrize("gpu", BY_GPU)
@pytest.mark.parametrize("name", CHOOSING)
def test_auto_picks_the_dtype_by_compute_capability_not_by_is_bf16_supported(gpu, name, monkeypatch, small_text,
                                                                             capsys):
    FakeCuda(monkeypatch, count=1, gpu=gpu, arch_list=CUDA_12_6)
    assert torch.cuda.is_bf16_supported()  # torch's own answer says yes everywhere: emulated below 8.0
    module = load_script(name)
    dtype, line = BY_GPU[gpu]
    cuda = torch.device("cuda:0")
    assert module.precision(cuda) == dtype and module.compile_off(cuda) == ""
    made = module.autocast(cuda)  # torch's own autocast, with its own checks of the dtype for the device
    assert (made.device, made.fast_dtype, made._enabled) == ("cuda", dtype, True)
    assert reached_training(name, monkeypatch, f"--data_path={small_text}")
    assert line in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("name", ["v6", "v13"])
def test_without_a_working_triton_the_run_is_uncompiled_and_says_why(name, monkeypatch, small_text, capsys):
    FakeCuda(monkeypatch, count=1, gpu="T4", triton=False)  # Windows, or a broken install
    module = load_script(name)
    assert module.compile_off(torch.device("cuda:0")) == "no working Triton"
    assert reached_training(name, monkeypatch, f"--data_path={small_text}")
    assert ("cuda:0 (Tesla T4, compute 7.5): torch.float16 with loss scaling; torch.compile off: no working Triton"
            in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("name", ["v6", "v13"])
def test_compile_false_says_so(name, monkeypatch, small_text, capsys):
    FakeCuda(monkeypatch, count=1, gpu="H100")
    assert reached_training(name, monkeypatch, f"--data_path={small_text}", "--compile=False", "--dtype=float32")
    assert ("cuda:0 (NVIDIA H100 80GB HBM3, compute 9.0): torch.float32; torch.compile off: --compile=False"
            in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("name", CHOOSING)
def test_mps_stays_in_float32_without_compile(name, monkeypatch, small_text, capsys):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    module = load_script(name)
    mps = torch.device("mps")
    assert module.precision(mps) == torch.float32 and module.compile_off(mps) == "not CUDA"
    assert not module.autocast(mps)._enabled
    monkeypatch.setattr(nn.Module, "to", lambda model, *args, **kwargs: model)  # the model stays on the CPU
    for factory in ("tensor", "zeros"):  # what the scripts make on their device before and after training: CPU
        real = getattr(torch, factory)
        monkeypatch.setattr(torch, factory, lambda *args, device=None, real=real, **kwargs: real(*args, **kwargs))
    assert reached_training(name, monkeypatch, f"--data_path={small_text}")
    assert "mps: torch.float32; torch.compile off: not CUDA" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_an_explicit_dtype_holds_on_any_device(dtype, monkeypatch):
    module = load_script("v8")
    monkeypatch.setattr(module, "dtype", dtype)
    for device in (torch.device("cpu"), torch.device("cuda:0")):
        assert module.precision(device) == getattr(torch, dtype)
    made = module.autocast(torch.device("cpu"))  # CPU autocast does bfloat16 and float16
    assert made._enabled == (dtype != "float32") and (dtype == "float32" or made.fast_dtype == getattr(torch, dtype))


def test_a_dtype_torch_cannot_autocast_to_is_refused_in_one_line(small_text, capsys):
    code, _, err = run_main("v6", tiny_args(load_script("v6"), dtype="float8") + [f"--data_path={small_text}"])
    assert code == 1 and err == "error: --dtype must be auto, bfloat16, float16 or float32, got float8\n"


def test_a_compile_that_fails_at_the_first_step_ends_in_one_line_that_names_compile_false(monkeypatch, small_text):
    """What a broken Triton gives once torch.compile's first call builds its kernels: the __main__ guard gets it."""
    def first_step(*args, **kwargs):
        raise torch._inductor.exc.InductorError(RuntimeError("Cannot find a working triton installation."), None)

    monkeypatch.setattr(torch, "manual_seed", first_step)  # the first of torch's calls in v6's main
    monkeypatch.setattr(sys, "argv", ["v6.py", *tiny_args(load_script("v6")), f"--data_path={small_text}"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "v6.py"), run_name="__main__")
    assert str(exit_info.value.code).startswith("error: torch.compile failed (")
    assert str(exit_info.value.code).endswith("); run with --compile=False")


# ---- float16 on the CPU, for real -------------------------------------------------

def test_float16_trains_for_real_on_the_cpu_near_float32s_loss(small_text):
    args = tiny_args(load_script("v7"), max_iters=20, eval_interval=10, batch_size=16, dropout=0.0) + [
        f"--data_path={small_text}"]
    runs = {dtype: run_main("v7", args + [f"--dtype={dtype}"]) for dtype in ("float32", "float16")}
    assert all(code == 0 for code, _, _ in runs.values())
    assert runs["float16"][1].splitlines()[0] == "cpu: torch.float16 with loss scaling; torch.compile off: not CUDA"
    val = {dtype: [float(line.split("val loss ")[1].split()[0]) for line in step_lines(out)]
           for dtype, (_, out, _) in runs.items()}
    assert val["float16"][-1] < val["float16"][0]  # it learns
    torch.testing.assert_close(torch.tensor(val["float16"]), torch.tensor(val["float32"]), rtol=0, atol=2e-2)


def test_a_float16_step_whose_gradients_overflow_is_skipped_and_the_scale_halves(monkeypatch):
    v6 = load_script("v6")
    for name, value in dict(block_size=8, n_embd=16, n_head=2, n_layer=1, batch_size=4, dropout=0.0, max_iters=3,
                            eval_interval=10, eval_iters=1, dtype="float16").items():
        monkeypatch.setattr(v6, name, value)
    scales, steps, backwards = [], [], []
    real_update, real_step = torch.amp.GradScaler.update, torch.optim.AdamW.step
    monkeypatch.setattr(torch.amp.GradScaler, "update", lambda self: (real_update(self), scales.append(
        self.get_scale())))
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: (steps.append(1), real_step(self, *a, **k)))
    torch.manual_seed(0)
    model = v6.GPTLanguageModel(11)
    model.lm_head.weight.register_hook(lambda grad: (backwards.append(1), grad * (float("inf") if len(
        backwards) == 2 else 1.0))[1])  # the second step's gradients overflow
    data = torch.randint(11, (200,))
    v6.train(model, data[:180], data[180:])
    assert scales == [2.0**16, 2.0**15, 2.0**15]  # halved after the overflow, kept after good steps
    assert len(steps) == 2  # the optimizer skipped the step whose gradients were not finite


@pytest.mark.parametrize("name", FAST_SCRIPTS)
def test_on_the_cpu_autocast_is_off_at_auto(name):
    module = load_script(name)
    assert module.precision(torch.device("cpu")) == torch.float32 and not module.autocast(torch.device("cpu"))._enabled


# ---- fused AdamW --------------------------------------------------------------------

def adamw_of(module, model):
    """The AdamW optimizer the script trains model with (v12 adds Muon beside it)."""
    if hasattr(module, "configure_optimizer"):
        return module.configure_optimizer(model)
    return next(o for o in module.configure_optimizers(model) if isinstance(o, torch.optim.AdamW))


@pytest.mark.parametrize("name", RECIPE_SCRIPTS)
def test_adamw_is_fused_for_weights_on_a_gpu_only(name, monkeypatch):
    module = load_script(name)
    for attribute, value in dict(n_embd=16, n_head=2, n_layer=1, block_size=8).items():
        monkeypatch.setattr(module, attribute, value)
    model = module.GPTLanguageModel(11)
    assert not adamw_of(module, model).defaults["fused"]
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda tensor: True))  # as a model on a GPU answers
    assert adamw_of(module, model).defaults["fused"]  # accepted by AdamW's own check of fused


# ---- what training does with a model on a GPU: its random state, its DDP wrapper ----------------------------

@pytest.mark.parametrize("name", ["v8", "v9", "v13"])
def test_a_gpu_runs_checkpoint_keeps_the_gpus_generator_and_a_resume_gives_it_back(name, monkeypatch, tmp_path):
    """Dropout on a GPU draws from the GPU's own generator: saved with the run, restored on resume."""
    module = shrink(load_script(name), monkeypatch, ckpt_path=str(tmp_path / "ckpt.pt"))
    model, gpu_state, restored = model_class(module)(300), torch.arange(16, dtype=torch.uint8), []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": gpu_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append(state))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    optimizers = (module.configure_optimizers if hasattr(module, "configure_optimizers") else
                  module.configure_optimizer)(model)
    saved = dict(step=0, model=model, optimizer=optimizers, optimizers=optimizers, batch_generator=torch.Generator(),
                 scaler=torch.amp.GradScaler("cpu", enabled=False), group=None,
                 text={"vocab": "ab", "merges": [], "text_sha256": "0"})
    with monkeypatch.context() as on_a_gpu:
        on_a_gpu.setattr(nn.Parameter, "is_cuda", property(lambda parameter: True))  # the weights, as on a GPU
        module.save_checkpoint(**{key: saved[key] for key in inspect.signature(module.save_checkpoint).parameters})
    state = module.read_checkpoint(tmp_path / "ckpt.pt")
    rng = state["rng"] if name == "v8" else state["rng"][0]  # v9 on: each process's
    assert torch.equal(rng["cuda"], gpu_state)
    module.restore(state, *[saved[key] for key in list(inspect.signature(module.restore).parameters)[1:]])
    assert len(restored) == 1 and torch.equal(restored[0], gpu_state)


def test_under_torchrun_ddp_wraps_the_model_on_this_processs_gpu(monkeypatch):
    module = shrink(load_script("v9"), monkeypatch, batch_size=8)
    monkeypatch.setattr(module, "WORLD_SIZE", 2)
    monkeypatch.setattr(module, "RANK", 1)
    monkeypatch.setattr(module, "DDP", lambda model, device_ids: ("DDP", device_ids))
    monkeypatch.setattr(dist, "new_group", lambda backend: backend)
    on_gpu_1 = SimpleNamespace(lm_head=SimpleNamespace(weight=SimpleNamespace(is_cuda=True, device=torch.device(
        "cuda:1"))))
    assert module.share_out(on_gpu_1) == (("DDP", [1]), slice(4, 8), "gloo")  # its GPU, its rows, agreement on gloo
