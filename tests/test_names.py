"""names/: the prequel's five scripts on a tiny word list, their models shrunk; never a full-size run."""

import builtins
import contextlib
import importlib.util
import io
import math
import os
import pathlib
import random
import re
import subprocess
import sys

import pytest
import torch

sys.dont_write_bytecode = True  # importing the scripts leaves no __pycache__ in names/
NAMES = pathlib.Path(__file__).resolve().parent.parent / "names"
SCRIPTS = ["counts", "bigram", "mlp", "batchnorm", "wavenet"]
TRAINED = SCRIPTS[1:]
BATCHNORM = ["batchnorm", "wavenet"]
BANNER = "# ---- the same in every script: command line, device, text, files ------------"
WORDS = ("emma olivia ava isabella sophia mia charlotte amelia harper evelyn abigail emily liam noah"
         " william james oliver benjamin elijah lucas mason logan alexander ethan jacob michael").split()
TINY = dict(batch_size=8, n_embd=4, n_hidden=8, max_iters=3, eval_interval=2, num_samples=3, device="cpu")


def load(name):
    """Import names/name.py as a new module object, independent of earlier imports."""
    spec = importlib.util.spec_from_file_location(f"names_{name}_under_test", NAMES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(name, monkeypatch, **overrides):
    """The script with TINY (and overrides) set where it has those hyperparameters."""
    module = load(name)
    for key, value in {**TINY, **overrides}.items():
        if hasattr(module, key):
            monkeypatch.setattr(module, key, value)
    return module


def run_main(module, argv):
    """(exit code, stdout, stderr) of module.main(argv); a sys.exit("error: ...") message counts as stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main(argv)
            code = 0
        except SystemExit as stop:
            code = stop.code
    if isinstance(code, str):  # what Python prints to stderr for it, with status 1
        err.write(code + "\n")
        code = 1
    return code, out.getvalue(), err.getvalue()


def model_of(module, vocab_size):
    """The script's model: bigram.py's is an embedding table of logits, built in its main()."""
    for name in ("MLP", "WaveNet"):
        if hasattr(module, name):
            return getattr(module, name)(vocab_size)
    return torch.nn.Embedding(vocab_size, vocab_size)


def dataset(module, words):
    """(stoi, X, Y) of the words, on the CPU."""
    stoi, _ = module.build_tokenizer(words)
    return (stoi, *module.build_dataset(words, stoi, "cpu"))


@pytest.fixture
def words_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    return path


def tiny_run(name, monkeypatch, words_file, *args, **overrides):
    return run_main(tiny(name, monkeypatch, **overrides), [f"--data_path={words_file}", *args])


def write(directory, text):
    path = directory / "data" / "words.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- the files ----------------------------------------------------------------------

def test_every_script_ends_with_the_shared_block_of_bigram_py():
    shared = (NAMES.parent / "bigram.py").read_text(encoding="utf-8")
    shared = shared[shared.index(BANNER):]
    for name in SCRIPTS:
        text = (NAMES / f"{name}.py").read_text(encoding="utf-8")
        assert text.count(BANNER) == 1 and text.endswith(shared), name


@pytest.mark.parametrize("name", SCRIPTS)
def test_import_only_defines_names(name, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("a file was opened at import")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(pathlib.Path, "read_text", refuse)
    module = load(name)
    assert callable(module.main) and {"data_path", "device", "seed", "out_path"} <= set(module.HYPERPARAMETERS)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_lists_every_hyperparameter(name):
    module = load(name)
    code, out, _ = run_main(module, ["--help"])
    assert code == 0 and all(f"--{h}" in out for h in module.HYPERPARAMETERS)


def test_the_step_count_is_max_iters_as_in_the_series():
    assert all(hasattr(load(name), "max_iters") for name in TRAINED)


# ---- data ---------------------------------------------------------------------------

def test_the_boundary_is_token_0_then_the_sorted_characters():
    stoi, itos = load("counts").build_tokenizer(["bob", "ada"])
    assert stoi == {".": 0, "a": 1, "b": 2, "d": 3, "o": 4} and itos == [".", "a", "b", "d", "o"]


def test_characters_beyond_a_to_z_join_the_vocabulary():
    stoi, _ = load("counts").build_tokenizer(["zoë", "jean-luc", "mary ann"])
    assert {"ë", "-", " "} <= set(stoi) and list(stoi)[1:] == sorted(list(stoi)[1:])


def test_a_dot_in_a_name_is_a_one_line_error():
    with pytest.raises(SystemExit, match=r"^error: .*'\.'") as stop:
        load("counts").build_tokenizer(["st.john"])
    assert "\n" not in stop.value.code


def test_the_names_are_the_files_non_empty_lines_stripped(monkeypatch, tmp_path):
    module = tiny("counts", monkeypatch)
    read = []

    def split_words(words):
        read.extend(words)
        raise SystemExit(0)  # the names are read: no need for the rest of the run

    monkeypatch.setattr(module, "split_words", split_words)
    path = write(tmp_path, "emma\n\n  liam \r\n\t\nava")
    run_main(module, [f"--data_path={path}"])
    assert read == ["emma", "liam", "ava"]


def test_the_split_is_the_lectures_shuffle_then_80_10_10():
    words = [f"name{i}" for i in range(101)]
    expected = list(words)
    random.Random(42).shuffle(expected)  # the lecture's random.seed(42); random.shuffle(words)
    train, val, test = load("counts").split_words(words)
    assert (train, val, test) == (expected[:80], expected[80:90], expected[90:])


def test_the_split_leaves_pythons_own_random_as_it_was():
    state = random.getstate()
    load("counts").split_words([f"name{i}" for i in range(10)])
    assert random.getstate() == state


def test_a_pair_is_each_character_and_the_next_of_the_name_framed_by_dots():
    stoi, X, Y = dataset(load("counts"), ["emma"])
    e, m, a = stoi["e"], stoi["m"], stoi["a"]
    assert X.tolist() == [0, e, m, m, a] and Y.tolist() == [e, m, m, a, 0]


def test_the_context_slides_one_character_at_a_time(monkeypatch):
    stoi, X, Y = dataset(tiny("mlp", monkeypatch, block_size=3), ["emma"])
    e, m, a = stoi["e"], stoi["m"], stoi["a"]
    assert X.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a]]
    assert Y.tolist() == [e, m, m, a, 0]


# ---- counts and the bigram ------------------------------------------------------------

def test_counts_loss_is_the_smoothed_count_nll():
    module = load("counts")
    words = ["ab", "abb", "ba"]
    stoi, X, Y = dataset(module, words)
    pairs = [(a, b) for w in words for a, b in zip("." + w, w + ".")]
    count = {pair: pairs.count(pair) for pair in pairs}
    nll = -sum(math.log((count[a, b] + 1) / (sum(n for (x, _), n in count.items() if x == a) + len(stoi)))
               for a, b in pairs) / len(pairs)
    assert module.split_loss(module.count_bigrams(X, Y, len(stoi)), X, Y) == pytest.approx(nll, abs=1e-6)


@pytest.mark.parametrize("pair", ["ba", "ca"], ids=["in-a-counted-row", "in-a-row-never-counted"])
def test_without_smoothing_a_pair_unseen_in_training_costs_inf(pair, monkeypatch):
    module = tiny("counts", monkeypatch, smoothing=0.0)
    stoi, X, Y = dataset(module, ["ab", "c"])
    P = module.count_bigrams(X[:3], Y[:3], len(stoi))  # the pairs of "ab" alone
    assert module.split_loss(P, torch.tensor([stoi[pair[0]]]), torch.tensor([stoi[pair[1]]])) == math.inf


def test_counts_prints_each_loss_once_and_no_step_line(monkeypatch, words_file):
    _, out, _ = tiny_run("counts", monkeypatch, words_file)
    assert [line.split()[0] for line in out.splitlines() if "loss" in line] == ["train", "val"]


def test_the_bigram_learns_the_count_tables_loss(monkeypatch):
    counts, bigram = load("counts"), tiny("bigram", monkeypatch, batch_size=512, max_iters=100,
                                           eval_interval=1000, learning_rate=0.5)
    monkeypatch.setattr(counts, "smoothing", 0.0)  # the unsmoothed table: the lowest loss on its own pairs
    stoi, X, Y = dataset(counts, WORDS)
    torch.manual_seed(0)
    model = model_of(bigram, len(stoi))
    with contextlib.redirect_stdout(io.StringIO()):
        bigram.train(model, {"train": (X, Y), "val": (X, Y)})
    best = counts.split_loss(counts.count_bigrams(X, Y, len(stoi)), X, Y)
    assert best <= bigram.split_loss(model, X, Y) < best + 0.05


# ---- BatchNorm1d and FlattenConsecutive -------------------------------------------------

@pytest.mark.parametrize("name", BATCHNORM)
def test_batchnorm_in_training_mode_is_torchs(name):
    torch.manual_seed(0)
    ours, theirs = load(name).BatchNorm1d(5), torch.nn.BatchNorm1d(5, eps=1e-5, momentum=0.1)
    for _ in range(3):  # the running statistics after three batches
        x = (torch.randn(16, 5) * 3 + 2).requires_grad_()
        out = ours(x)
        grad, = torch.autograd.grad((out * torch.arange(5.0)).sum(), x)
        expected = theirs(x)
        expected_grad, = torch.autograd.grad((expected * torch.arange(5.0)).sum(), x)
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(grad, expected_grad)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)


@pytest.mark.parametrize("name", BATCHNORM)
def test_batchnorm_in_eval_mode_uses_the_running_statistics_as_torch(name):
    torch.manual_seed(0)
    ours, theirs = load(name).BatchNorm1d(5), torch.nn.BatchNorm1d(5)
    for _ in range(3):
        x = torch.randn(16, 5) * 3 + 2
        ours(x), theirs(x)
    ours.eval(), theirs.eval()
    x = torch.randn(1, 5)  # one example alone: no batch statistics to be had
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)  # untouched in eval mode


def test_batchnorm_on_b_t_c_is_torchs_on_b_c_t():
    torch.manual_seed(0)
    ours, theirs = load("wavenet").BatchNorm1d(5), torch.nn.BatchNorm1d(5)
    x = torch.randn(8, 4, 5) * 3 + 2
    torch.testing.assert_close(ours(x), theirs(x.transpose(1, 2)).transpose(1, 2))
    torch.testing.assert_close(ours.running_var, theirs.running_var)


def test_flatten_consecutive_is_a_reshape_that_drops_a_last_dim_of_1():
    flatten = load("wavenet").FlattenConsecutive(2)
    x = torch.randn(3, 8, 5)
    assert torch.equal(flatten(x), x.reshape(3, 4, 10))
    assert torch.equal(flatten(x[:, :2]), x[:, :2].reshape(3, 10))


# ---- the models and their training --------------------------------------------------------

@pytest.mark.parametrize("name, model, parameters", [
    ("mlp", "MLP", 11_897), ("batchnorm", "MLP", 12_097), ("wavenet", "WaveNet", 76_579)])
def test_the_defaults_are_the_lectures_sizes(name, model, parameters):
    assert sum(p.numel() for p in getattr(load(name), model)(27).parameters()) == parameters


@pytest.mark.parametrize("name", TRAINED)
def test_a_batch_of_contexts_gives_a_row_of_logits_each(name, monkeypatch):
    module = tiny(name, monkeypatch)
    stoi, X, _ = dataset(module, WORDS[:4])
    assert model_of(module, len(stoi))(X).shape == (len(X), len(stoi))


@pytest.mark.parametrize("name", TRAINED)
def test_a_few_training_steps_lower_the_loss(name, monkeypatch):
    module = tiny(name, monkeypatch, max_iters=30, eval_interval=100, batch_size=32, learning_rate=1e-2)
    stoi, X, Y = dataset(module, WORDS)
    torch.manual_seed(0)
    model = model_of(module, len(stoi))
    before = module.split_loss(model, X, Y)
    with contextlib.redirect_stdout(io.StringIO()):
        module.train(model, {"train": (X, Y), "val": (X, Y)})
    assert module.split_loss(model, X, Y) < before - 0.1


@pytest.mark.parametrize("name", BATCHNORM)
def test_the_evaluations_during_training_leave_the_training_as_it_was(name, monkeypatch):
    module = tiny(name, monkeypatch, max_iters=6)
    stoi, X, Y = dataset(module, WORDS)
    trained = []
    for every in (1, 100):  # an evaluation after every step, or only before the first
        monkeypatch.setattr(module, "eval_interval", every)
        torch.manual_seed(0)
        model = model_of(module, len(stoi))
        with contextlib.redirect_stdout(io.StringIO()):
            module.train(model, {"train": (X, Y), "val": (X, Y)})
        trained.append(model.state_dict())  # BatchNorm's running estimates among the weights
    assert all(torch.equal(trained[0][key], trained[1][key]) for key in trained[0])


def test_a_loss_that_is_not_finite_ends_the_run_in_one_line():
    model = torch.nn.Embedding(3, 3)
    torch.nn.init.constant_(model.weight, math.nan)  # the weights of a training that blew up
    with pytest.raises(SystemExit, match=r"^error: the loss is not finite") as stop:
        load("bigram").split_loss(model, torch.tensor([0, 1]), torch.tensor([1, 2]))
    assert "\n" not in stop.value.code


# ---- a run ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SCRIPTS)
def test_the_last_loss_line_is_val_loss_then_the_names(name, monkeypatch, words_file):
    code, out, _ = tiny_run(name, monkeypatch, words_file)
    lines = out.splitlines()
    last = max(i for i, line in enumerate(lines) if re.match(r"(step \d+: )?(train|val) loss", line))
    assert code == 0 and re.fullmatch(r"val loss \d+\.\d{4}", lines[last])
    assert len(lines) == last + 4 and all(re.fullmatch("[a-z]*", n) for n in lines[last + 1:])


@pytest.mark.parametrize("name", SCRIPTS)
def test_out_path_gets_the_printed_names(name, monkeypatch, words_file, tmp_path):
    out_file = tmp_path / "names_out.txt"
    code, out, _ = tiny_run(name, monkeypatch, words_file, f"--out_path={out_file}")
    assert code == 0 and out_file.read_text(encoding="utf-8").splitlines() == out.splitlines()[-3:]


@pytest.mark.parametrize("name, layers", [("batchnorm", 1), ("wavenet", 3)])
def test_the_health_check_has_a_line_per_tanh_layer_before_the_val_loss(name, layers, monkeypatch, words_file):
    _, out, _ = tiny_run(name, monkeypatch, words_file)
    lines = out.splitlines()
    health = [i for i, line in enumerate(lines) if re.fullmatch(
        r"layer \d+ \(Tanh\): mean [+-]\d\.\d\d, std \d\.\d\d, saturated \d+\.\d\d%", line)]
    assert len(health) == layers and health[-1] < lines.index(next(l for l in lines if l.startswith("val loss")))


def test_a_plot_without_matplotlib_is_refused_before_the_training(tmp_path, words_file):
    fake = tmp_path / "fake" / "matplotlib"  # a matplotlib that cannot be imported, as a broken install
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('matplotlib is broken here')\n", encoding="utf-8")
    args = [f"--{key}={value}" for key, value in TINY.items()]
    result = subprocess.run([sys.executable, str(NAMES / "batchnorm.py"), *args, f"--data_path={words_file}",
                             f"--plot_path={tmp_path / 'tanh.png'}"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "fake")}, timeout=60)
    assert result.returncode == 1 and result.stdout == ""  # no line of the training
    assert result.stderr == "error: --plot_path needs matplotlib (pip install matplotlib)\n"
    assert not (tmp_path / "tanh.png").exists()


def test_a_plot_with_matplotlib_is_drawn(monkeypatch, words_file, tmp_path):
    pytest.importorskip("matplotlib")
    code, _, _ = tiny_run("wavenet", monkeypatch, words_file, f"--plot_path={tmp_path / 'tanh.png'}")
    assert code == 0 and (tmp_path / "tanh.png").read_bytes().startswith(b"\x89PNG")


# ---- bad inputs: one line, nothing written ----------------------------------------------------

BAD = {
    "a missing file": ("counts", lambda d: [f"--data_path={d / 'missing.txt'}"], "cannot read"),
    "an empty file": ("bigram", lambda d: [f"--data_path={write(d, '')}"], "empty"),
    "blank lines only": ("mlp", lambda d: [f"--data_path={write(d, chr(10) * 3)}"], "too few"),
    "one name": ("batchnorm", lambda d: [f"--data_path={write(d, 'emma' + chr(10))}"], "too few"),
    "a dot in a name": ("wavenet", lambda d: [f"--data_path={write(d, 'st.john' + chr(10))}"], "'.'"),
    "block_size 0 (mlp)": ("mlp", lambda d: ["--block_size=0"], "--block_size"),
    "block_size 0 (batchnorm)": ("batchnorm", lambda d: ["--block_size=0"], "--block_size"),
    "block_size 0 (wavenet)": ("wavenet", lambda d: ["--block_size=0"], "--block_size"),
    "block_size 6 (wavenet)": ("wavenet", lambda d: ["--block_size=6"], "power of 2"),
    "block_size 128 (wavenet)": ("wavenet", lambda d: ["--block_size=128"], "--block_size"),
    "batch_size 1 (batchnorm)": ("batchnorm", lambda d: ["--batch_size=1"], "--batch_size"),
    "an absurd n_hidden": ("mlp", lambda d: ["--n_hidden=100000000"], "--n_hidden"),
    "an absurd batch_size": ("bigram", lambda d: ["--batch_size=2000000000"], "--batch_size"),
    "a huge num_samples": ("counts", lambda d: ["--num_samples=2000000000"], "--num_samples"),
    "a negative learning_rate": ("bigram", lambda d: ["--learning_rate=-1"], "--learning_rate"),
    "a min_lr past float32 in AdamW": ("wavenet", lambda d: ["--min_lr=1e38"], "--min_lr"),
    "a plot that is not an image": ("batchnorm", lambda d: [f"--plot_path={d / 'tanh.txt'}"], ".png"),
    "a negative smoothing": ("counts", lambda d: ["--smoothing=-1"], "--smoothing"),
    "a smoothing past float32": ("counts", lambda d: ["--smoothing=1e308"], "--smoothing"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_is_one_line_and_nothing_written(case, monkeypatch, tmp_path, words_file):
    name, args, fragment = BAD[case]
    module = tiny(name, monkeypatch, data_path=str(words_file))
    args = args(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run_main(module, [*args, f"--out_path={tmp_path / 'out.txt'}"])
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1 and fragment in err
    assert out == "" and sorted(tmp_path.rglob("*")) == before


def test_a_bad_input_run_as_a_user_is_one_line_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(NAMES / "mlp.py"), f"--data_path={tmp_path / 'missing.txt'}",
                             f"--out_path={tmp_path / 'out.txt'}"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot read") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
