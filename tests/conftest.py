"""Shared helpers: load a script as a fresh module and shrink it to a CPU-sized model."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

sys.dont_write_bytecode = True  # importing the scripts leaves no __pycache__ beside them

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["bigram", "v2", "v3", "v4", "v5", "v6"]
ATTENTION_SCRIPTS = SCRIPTS[1:]

# Small values for every hyperparameter that makes the model or a run large.
TINY = {
    "batch_size": 4,
    "block_size": 8,
    "n_embd": 16,
    "n_head": 2,
    "n_layer": 2,
    "eval_iters": 2,
    "max_new_tokens": 20,
}


def load_script(name):
    """Import ROOT/name.py as a new module object, independent of earlier imports."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shrink(module, monkeypatch, **overrides):
    """Set the module's own hyperparameters to TINY (and overrides) where it has them."""
    for name, value in {**TINY, **overrides}.items():
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)
    return module


@pytest.fixture(scope="session")
def small_text(tmp_path_factory):
    """The first 20,000 characters of input.txt: enough for a few steps, quick to evaluate in full."""
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text((ROOT / "input.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return path


def model_class(module):
    return getattr(module, "GPTLanguageModel", None) or module.BigramLanguageModel


def training_step(module, model):
    """A function (x, y) -> loss running the script's own optimizer and train_step, as train() sets them up."""
    if hasattr(module, "configure_optimizer"):  # v6: its own AdamW set-up and a loss scaler (off on CPU)
        optimizer = module.configure_optimizer(model)
        scaler = torch.amp.GradScaler(enabled=False)
        return lambda x, y: module.train_step(model, optimizer, scaler, x, y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=module.learning_rate)
    return lambda x, y: module.train_step(model, optimizer, x, y)


@pytest.fixture(params=SCRIPTS)
def script(request, monkeypatch):
    """Each script in turn, shrunk to TINY, with dropout off so that outputs are deterministic."""
    return shrink(load_script(request.param), monkeypatch, dropout=0.0)


@pytest.fixture(params=ATTENTION_SCRIPTS)
def attention_script(request, monkeypatch):
    return shrink(load_script(request.param), monkeypatch, dropout=0.0)
