"""micrograd/: the scalar engine and its MLP checked against PyTorch; moons.py's training and command line."""

import importlib.util
import math
import os
import random
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

MICROGRAD = Path(__file__).resolve().parent.parent / "micrograd"
if str(MICROGRAD) not in sys.path:
    sys.path.insert(0, str(MICROGRAD))  # the files import each other by bare name, as scripts beside them

from engine import Value  # noqa: E402
from nn import MLP, Layer, Neuron  # noqa: E402


def assert_matches_torch(f, *inputs):
    """f on Values and f on float64 tensors give the same result and the same gradient for every input."""
    values = [Value(x) for x in inputs]
    out = f(*values)
    out.backward()
    tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    expected = f(*tensors)
    expected.backward()
    assert out.data == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)
    for value, tensor in zip(values, tensors):
        assert value.grad == pytest.approx(tensor.grad.item(), rel=1e-12, abs=1e-12)


# name -> (f, inputs): tensors have the same operators and relu/tanh/exp/log methods as Values
OPERATIONS = {
    "a + b": (lambda a, b: a + b, 2.0, -3.0),
    "a - b": (lambda a, b: a - b, 2.0, -3.0),
    "a * b": (lambda a, b: a * b, 2.0, -3.0),
    "a / b, b a Value": (lambda a, b: a / b, 2.0, -3.0),
    "a / 4": (lambda a: a / 4, 3.0),
    "-a": (lambda a: -a, 3.0),
    "a ** 2": (lambda a: a ** 2, -3.0),
    "a ** 3 at a negative": (lambda a: a ** 3, -2.0),
    "a ** 2.5": (lambda a: a ** 2.5, 1.7),
    "a ** -1.5": (lambda a: a ** -1.5, 1.7),
    "a ** -1": (lambda a: a ** -1, -0.5),
    "a ** 0": (lambda a: a ** 0 * a, 1.3),  # times a: torch leaves the grad of an unused input at None
    "2 + a": (lambda a: 2 + a, 3.0),
    "2 * a": (lambda a: 2 * a, 3.0),
    "1 - a": (lambda a: 1 - a, 3.0),
    "3 / a": (lambda a: 3 / a, -1.5),
    "relu at a positive": (lambda a: a.relu(), 1.5),
    "relu at a negative": (lambda a: a.relu(), -1.5),
    "relu at 0": (lambda a: a.relu(), 0.0),  # torch's slope there is 0
    "tanh at a positive": (lambda a: a.tanh(), 0.7),
    "tanh at a negative": (lambda a: a.tanh(), -2.0),
    "tanh at 0": (lambda a: a.tanh(), 0.0),
    "exp at a positive": (lambda a: a.exp(), 1.2),
    "exp at a negative": (lambda a: a.exp(), -3.0),
    "exp at 0": (lambda a: a.exp(), 0.0),
    "log": (lambda a: a.log(), 2.5),
    "log below 1": (lambda a: a.log(), 0.25),
    "a reused node: b = a * a; b + b + a": (lambda a: (lambda b: b + b + a)(a * a), -3.0),
    "a used in several places": (lambda a, b: a * b + b ** 3 - a / b + (a + b).relu(), 1.5, -0.5),
    "a long expression": (lambda a, b: ((a * b).tanh() + 1.5 + (2 - b).exp() / (a ** 2 + 1)).log()
                          - 3 * (b - a).relu() ** 2, -4.0, 2.0),
}


@pytest.mark.parametrize("name", OPERATIONS)
def test_value_and_gradients_match_torch(name):
    f, *inputs = OPERATIONS[name]
    assert_matches_torch(f, *inputs)


@pytest.mark.parametrize("x", [0.0, -2.0])
def test_log_of_a_non_positive_number_raises_a_value_error_naming_it(x):
    with pytest.raises(ValueError, match=re.escape(f"log of a non-positive number: {x}")):
        Value(x).log()


def test_fractional_power_of_a_negative_number_raises_a_value_error():
    with pytest.raises(ValueError, match="not a real number"):
        Value(-2.0) ** 0.5


def test_power_with_a_value_exponent_raises_a_type_error():
    with pytest.raises(TypeError, match="int or float exponent"):
        Value(2.0) ** Value(3.0)


def test_backward_a_second_time_adds_the_gradients_again():
    a = Value(3.0)
    b = a * 2
    b.backward()
    b.backward()
    assert a.grad == 4.0  # why training needs zero_grad() before each backward()


def test_backward_handles_a_graph_deeper_than_the_recursion_limit():
    xs = [Value(1.0) for _ in range(3 * sys.getrecursionlimit())]
    total = sum(xs)  # a chain of additions, one level deeper per term
    total.backward()
    assert total.data == len(xs) and all(x.grad == 1.0 for x in xs)


# ---- nn.py ----

def test_mlp_3_4_4_1_has_41_parameters():
    assert len(MLP(3, [4, 4, 1]).parameters()) == (3 + 1) * 4 + (4 + 1) * 4 + (4 + 1) * 1 == 41


def test_weights_start_uniform_in_minus_one_one_and_biases_at_zero():
    random.seed(0)
    neuron = Neuron(1000)
    weights = [w.data for w in neuron.w]
    assert all(-1 <= w <= 1 for w in weights) and min(weights) < -0.9 and max(weights) > 0.9
    assert neuron.b.data == 0.0


def test_mlp_with_one_output_returns_a_value_and_with_several_a_list():
    assert isinstance(MLP(2, [3, 1])([1.0, 2.0]), Value)
    outputs = MLP(2, [3, 2])([1.0, 2.0])
    assert isinstance(outputs, list) and len(outputs) == 2


def test_layer_returns_one_value_per_neuron():
    assert len(Layer(3, 5)([1.0, 2.0, 3.0])) == 5


def mlp_in_torch(model):
    """The same network as torch.nn.Linear layers holding the model's weights, ReLU between them."""
    layers = []
    for layer in model.layers:
        linear = torch.nn.Linear(len(layer.neurons[0].w), len(layer.neurons), dtype=torch.float64)
        weights = [[w.data for w in n.w] for n in layer.neurons]
        with torch.no_grad():  # float64 from the start: a float32 tensor would round the weights
            linear.weight.copy_(torch.tensor(weights, dtype=torch.float64))
            linear.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64))
        layers.append(linear)
    return layers


def test_mlp_output_and_every_parameter_gradient_match_the_same_network_in_torch():
    random.seed(3)
    model = MLP(3, [4, 4, 1])
    for p in model.parameters():
        p.data = random.uniform(-1, 1)  # biases too: at 0 they would not test their part of the forward pass
    x = [0.5, -1.2, 2.0]
    out = model(x)
    out.backward()

    layers = mlp_in_torch(model)
    h = torch.tensor(x, dtype=torch.float64)
    for i, linear in enumerate(layers):
        h = linear(h)
        h = h.relu() if i < len(layers) - 1 else h  # hidden layers ReLU, the last one linear
    h[0].backward()

    assert out.data == pytest.approx(h.item(), rel=1e-12)
    for layer, linear in zip(model.layers, layers):
        for n, weight_grads, bias_grad in zip(layer.neurons, linear.weight.grad, linear.bias.grad):
            assert [w.grad for w in n.w] == pytest.approx(weight_grads.tolist(), rel=1e-12, abs=1e-12)
            assert n.b.grad == pytest.approx(bias_grad.item(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("inputs", [[1.0], [1.0, 2.0, 3.0]])
@pytest.mark.parametrize("module", ["Neuron", "Layer", "MLP"])
def test_a_module_called_on_the_wrong_number_of_inputs_raises_a_value_error(module, inputs):
    model = {"Neuron": Neuron(2), "Layer": Layer(2, 3), "MLP": MLP(2, [3, 1])}[module]  # each reads 2 inputs
    with pytest.raises(ValueError, match=f"expected 2 inputs, got {len(inputs)}"):
        model(inputs)


def test_zero_grad_sets_every_parameter_gradient_to_zero():
    model = MLP(3, [4, 4, 1])
    for p in model.parameters():
        p.grad = 1.5
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


# ---- moons.py ----

@pytest.fixture
def moons():
    """A fresh import of moons.py: main() sets its module-level names, so no test sees another's."""
    spec = importlib.util.spec_from_file_location("moons_under_test", MICROGRAD / "moons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_importing_moons_prints_nothing(capsys):
    spec = importlib.util.spec_from_file_location("moons_imported", MICROGRAD / "moons.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert capsys.readouterr() == ("", "")


def test_moons_are_half_minus_one_half_plus_one(moons):
    _, y = moons.make_moons(10, 0.1, random.Random(0))
    assert sorted(y) == [-1] * 5 + [1] * 5


def test_moons_without_noise_lie_on_their_two_half_circles(moons):
    X, y = moons.make_moons(20, 0.0, random.Random(0))
    for (a, b), label in zip(X, y):
        centre = (0.0, 0.0) if label == -1 else (1.0, 0.5)
        assert math.dist((a, b), centre) == pytest.approx(1.0)
        assert (b >= 0) if label == -1 else (b <= 0.5)  # the upper half of one, the lower half of the other


def test_moons_are_the_same_for_the_same_seed(moons):
    assert moons.make_moons(8, 0.1, random.Random(5)) == moons.make_moons(8, 0.1, random.Random(5))


def test_a_few_training_steps_lower_the_loss(moons, monkeypatch):
    monkeypatch.setattr(moons, "max_iters", 5)
    random.seed(0)
    X, y = moons.make_moons(16, 0.1, random.Random(0))
    model = MLP(2, [4, 4, 1])
    before, _ = moons.loss_and_accuracy(model, X, y)
    after, _ = moons.train(model, X, y)
    assert after.data < before.data


def test_main_prints_the_final_accuracy(moons, capsys):
    moons.main(["--n_samples=8", "--n_hidden=2", "--max_iters=2"])
    assert re.search(r"accuracy \d+%$", capsys.readouterr().out.splitlines()[-1])


def test_plot_path_writes_the_decision_boundary_image(moons, tmp_path):
    pytest.importorskip("matplotlib")
    moons.main(["--n_samples=4", "--n_hidden=2", "--max_iters=1", f"--plot_path={tmp_path / 'moons.png'}"])
    assert (tmp_path / "moons.png").stat().st_size > 0


def test_help_lists_every_hyperparameter_with_its_comment(moons, capsys):
    with pytest.raises(SystemExit) as exit_info:
        moons.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    for name in moons.HYPERPARAMETERS:
        assert f"--{name}" in out
    assert "training points, half on each moon" in out


@pytest.mark.parametrize("arg", ["--max_iters=abc", "--n_samples=1", "--noise=nan", "--learning_rate=-1",
                                 "--max_iter=5", "--no_such_name=1", "positional"])
def test_bad_input_exits_non_zero(moons, arg):
    with pytest.raises(SystemExit) as exit_info:
        moons.main([arg])
    assert exit_info.value.code != 0


def run_moons(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-B", str(MICROGRAD / "moons.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def assert_refused_in_one_line(result, *words):
    """Exit status 1, nothing trained (no line on stdout), and one error line on stderr holding the words."""
    assert result.returncode == 1 and result.stdout == "", result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def test_bad_input_gives_a_short_error_without_a_traceback(tmp_path):
    result = run_moons("--max_iters=abc", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 3
    assert "--max_iters" in result.stderr


@pytest.mark.parametrize("where", ["repository root", "micrograd folder", "elsewhere"])
def test_moons_runs_as_a_script_from_any_directory(where, tmp_path):
    cwd = {"repository root": MICROGRAD.parent, "micrograd folder": MICROGRAD, "elsewhere": tmp_path}[where]
    result = run_moons("--n_samples=4", "--n_hidden=2", "--max_iters=1", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout.splitlines()[-1]


def test_ctrl_c_exits_130_without_a_traceback():
    # SIG_DFL: a child of a shell that ignores SIGINT would inherit that, and Python would then never see Ctrl-C
    process = subprocess.Popen([sys.executable, "-B", "-u", str(MICROGRAD / "moons.py"), "--max_iters=10000",
                                "--eval_interval=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline, line = time.monotonic() + 30, ""
        while not line.startswith("step "):  # Ctrl-C in the middle of the training
            assert select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0], "no step line"
            line = process.stdout.readline()
            assert line, "moons.py ended before its first step line"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130 and stderr == ""


def test_a_learning_rate_beyond_a_float_is_refused_in_one_line(tmp_path):
    assert_refused_in_one_line(run_moons("--learning_rate=1e200", cwd=tmp_path), "--learning_rate")


@pytest.mark.parametrize("arg", [f"--n_samples={10**20}", f"--n_hidden={10**20}", f"--n_layers={10**20}",
                                 f"--max_iters={10**20}", f"--eval_interval={10**20}", "--n_samples=0",
                                 "--n_samples=7", "--noise=-0.1", "--noise=inf", "--alpha=-1", "--learning_rate=nan",
                                 "--eval_interval=0", "--seed=-1", f"--seed={2**64}"])
def test_a_value_no_run_can_use_is_refused_in_one_line_before_the_training(arg, tmp_path):
    assert_refused_in_one_line(run_moons(arg, cwd=tmp_path), arg.split("=")[0])


# 1 layer: a weight's square overflows (at step 115); 3 layers: a score reaches inf, at step 8, after the last step
@pytest.mark.parametrize("n_layers, max_iters", [(1, 1000), (3, 8)])
def test_weights_that_blow_up_end_the_run_in_one_error_line(n_layers, max_iters, tmp_path):
    result = run_moons("--alpha=1", "--learning_rate=10", "--n_samples=8", "--n_hidden=2", f"--n_layers={n_layers}",
                       f"--max_iters={max_iters}", cwd=tmp_path)
    assert result.returncode == 1 and "steps: loss" not in result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.splitlines()[1:] == [], result.stderr
    assert "try a smaller --learning_rate" in result.stderr


@pytest.fixture
def without_matplotlib(tmp_path):
    """An environment in which `import matplotlib` fails: a package of that name, first on the path, raises."""
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("matplotlib is hidden for this test")\n')
    return {**os.environ, "PYTHONPATH": str(fake.parent)}


def test_plot_path_without_matplotlib_is_refused_before_the_training(without_matplotlib, tmp_path):
    result = run_moons(f"--plot_path={tmp_path / 'moons.png'}", cwd=tmp_path, env=without_matplotlib)
    assert_refused_in_one_line(result, "needs matplotlib")
    assert not (tmp_path / "moons.png").exists()


def test_plot_path_with_an_unknown_image_format_is_refused_before_the_training(tmp_path):
    pytest.importorskip("matplotlib")
    assert_refused_in_one_line(run_moons(f"--plot_path={tmp_path / 'moons.xyz'}", cwd=tmp_path), ".png")
    assert not (tmp_path / "moons.xyz").exists()


@pytest.mark.parametrize("where", ["a directory", "a missing folder", "a file of the project",
                                   "a link to a file of the project", "a file of the user"])
def test_plot_path_that_cannot_or_must_not_be_written_is_refused_before_the_training(where, without_matplotlib,
                                                                                        tmp_path):
    # matplotlib hidden: a path let through by mistake would still not be drawn over
    project_file = MICROGRAD.parent / "loss_curves.png"
    (tmp_path / "link.png").symlink_to(project_file)
    (tmp_path / "mine.png").write_bytes(b"the user's picture")
    path = {"a directory": tmp_path, "a missing folder": tmp_path / "missing" / "moons.png",
            "a file of the project": project_file, "a link to a file of the project": tmp_path / "link.png",
            "a file of the user": tmp_path / "mine.png"}[where]
    result = run_moons(f"--plot_path={path}", cwd=tmp_path, env=without_matplotlib)
    why = "is in no folder that exists" if where == "a missing folder" else "exists"  # each its one cause
    assert_refused_in_one_line(result, f"--plot_path={path} {why}: a run writes only new files")
