"""The CUDA half, checked on a CPU: CUDA is made to look present, and every torch.cuda call the scripts make before
and after training goes through torch's own argument checks. A device without an index where one is needed, an
index past the GPUs or a backend a GPU cannot use fails here as it would on a GPU; the tensors stay on the CPU."""

import sys

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.cuda._utils import _get_device_index

from conftest import FAST_SCRIPTS, RECIPE_SCRIPTS, SCRIPTS, load_script, tiny_args


class FakeCuda:
    """A machine with `count` GPUs, as torch.cuda describes it; what the scripts asked of it is kept in `asked`."""

    def __init__(self, monkeypatch, count):
        self.count, self.current, self.asked, self.placed = count, 0, [], []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)  # as an A100 or H100
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

    def set_device(self, device):
        self.current = self.index(device, optional=False)
        self.asked.append(("set_device", self.current))

    def place(self, device):
        """Whether device is a GPU (then checked and kept in `placed`)."""
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


@pytest.mark.parametrize("name", FAST_SCRIPTS)
def test_on_a_gpu_autocast_is_bf16_and_on_the_cpu_float32(name, monkeypatch):
    FakeCuda(monkeypatch, count=1)
    module = load_script(name)
    on_gpu, on_cpu = module.autocast(torch.device("cuda:0")), module.autocast(torch.device("cpu"))
    assert (on_gpu.device, on_gpu.fast_dtype, on_gpu._enabled) == ("cuda", torch.bfloat16, True)
    assert not on_cpu._enabled


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
