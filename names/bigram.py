"""The same bigram model, learned: a table of logits trained by gradient descent (makemore, part 1, second half).

Row i of a matrix W (nn.Embedding's lookup: one_hot(i) @ W) holds the logits of the character after character i.
AdamW steps on random batches, the step size decayed on a cosine to min_lr, bring W near the log of counts.py's table.
"""

import argparse
import math
import os
import random
import re
import sys
import tokenize
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

batch_size = 256  # training examples per step
max_iters = 3000  # optimizer steps
eval_interval = 500  # steps between evaluations of the loss
learning_rate = 0.1  # AdamW step size at the start (the lecture: full-batch gradient descent, 50)
min_lr = 0.01  # the step size the cosine schedule ends at, at max_iters
num_samples = 20  # names sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("names.txt"))  # training names: a UTF-8 file, one name per line
seed = 2147483647  # random seed for torch (the lecture's): the same seed gives the same run
out_path = ""  # file the sampled names are also written to ('' = printed only)
HYPERPARAMETERS = [n for n, v in globals().items() if not n.startswith("_") and isinstance(v, (bool, int, float, str))]
LOWEST = dict(batch_size=1, max_iters=0, eval_interval=1, learning_rate=0.0, min_lr=0.0, num_samples=0, seed=0)
HIGHEST = dict(batch_size=2**16, learning_rate=1e30, min_lr=1e30, num_samples=100_000)


def check_hyperparameters():
    """A value no run can use stops the run here, in one line; past HIGHEST, memory, time or float32 runs out."""
    if big := [name for name, high in HIGHEST.items() if globals()[name] > high]:
        sys.exit(f"error: --{big[0]} must be at most {HIGHEST[big[0]]}, got {globals()[big[0]]}")


def build_tokenizer(words):
    """stoi and itos: '.', where a name starts and ends, is token 0; the names' characters follow, sorted."""
    itos = ["."] + sorted(set("".join(words)))
    if "." in itos[1:]:
        sys.exit("error: a name contains '.', the token that marks where names start and end")
    return {ch: i for i, ch in enumerate(itos)}, itos


def split_words(words):
    """The lecture's split: shuffled in place, Python's random seeded 42; 80% train, 10% val, 10% test (kept aside)."""
    random.Random(42).shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    if n1 == n2:
        sys.exit(f"error: {len(words)} name(s) are too few: the val split (10%) would be empty; give at least 6")
    return words[:n1], words[n1:n2], words[n2:]


def build_dataset(words, stoi, torch_device):
    """Every (character, next character) pair of the words framed by '.': ".emma." gives X = .emma, Y = emma."""
    X = torch.tensor([stoi[ch] for w in words for ch in "." + w], device=torch_device)  # (N,) each character
    Y = torch.tensor([stoi[ch] for w in words for ch in w + "."], device=torch_device)  # (N,) the one after it
    return X, Y


def train(model, splits):
    """AdamW steps on random batches, the step size decayed on a cosine to min_lr; the losses every eval_interval."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    X, Y = splits["train"]
    for step in range(max_iters):
        if step % eval_interval == 0:
            losses = ", ".join(f"{split} loss {split_loss(model, *XY):.4f}" for split, XY in splits.items())
            print(f"step {step}: {losses}", flush=True)
        lr = min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * step / max_iters))
        optimizer.param_groups[0]["lr"] = lr
        ix = torch.randint(len(X), (batch_size,), device=X.device)  # a random batch
        loss = F.cross_entropy(model(X[ix]), Y[ix])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def split_loss(model, X, Y):
    """Mean negative log-likelihood of the next character over a whole split, 4,096 pairs at a time."""
    total = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in zip(X.split(4096), Y.split(4096)))
    if not math.isfinite(total):  # NaN or inf: the training blew up
        sys.exit("error: the loss is not finite: the training blew up; try a smaller --learning_rate")
    return total / len(X)


@torch.no_grad()
def sample_name(model, itos, torch_device):
    """A name drawn from the model a character at a time, until it draws '.' (or 50 characters are drawn)."""
    ix, name = 0, ""  # '.': the name starts
    while len(name) < 50:
        probs = F.softmax(model(torch.tensor([ix], device=torch_device)), dim=-1)  # (1, vocab_size)
        ix = torch.multinomial(probs[0], num_samples=1).item()
        if ix == 0:
            break
        name += itos[ix]
    return name


def main(argv):
    parse_args(argv)  # --name=value for the hyperparameters above
    check_hyperparameters()
    torch_device = pick_device(device)
    words = [line.strip() for line in load_text(data_path).splitlines() if line.strip()]  # the names
    stoi, itos = build_tokenizer(words)
    splits = {split: build_dataset(w, stoi, torch_device) for split, w in zip(["train", "val"], split_words(words))}

    torch.manual_seed(seed)
    model = nn.Embedding(len(stoi), len(stoi)).to(torch_device)  # W: row i holds the logits of the character after i
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {torch_device}")
    train(model, splits)
    for split, (X, Y) in splits.items():
        print(f"{split} loss {split_loss(model, X, Y):.4f}")

    names = [sample_name(model, itos, torch_device) for _ in range(num_samples)]
    print("\n".join(names))
    if out_path:
        write_atomically(out_path, "".join(f"{name}\n" for name in names).encode("utf-8"))


# ---- the same in every script: command line, device, text, files ------------

def parse_args(argv):
    """Set the hyperparameters above from --name=value or --name value, each checked alone; return the names given."""
    with tokenize.open(__file__) as source:  # Python's own reading of this file: a '#' in a string is no comment
        comments = {token.line.split("=")[0].rstrip(): token.string.lstrip("# ")  # name = value  # comment
                    for token in tokenize.generate_tokens(source.readline) if token.type == tokenize.COMMENT}
    parser = argparse.ArgumentParser(prog=f"python {Path(__file__).name}", usage="%(prog)s [--name=value ...]",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False, argument_default=argparse.SUPPRESS)
    kinds = {name: type(globals()[name]) for name in HYPERPARAMETERS}  # each typed by its default
    for name, kind in kinds.items():  # a number takes any number
        parser.add_argument(f"--{name}", type={bool: str.lower, str: str}.get(kind, float), metavar=kind.__name__,
                            choices=["true", "false", "1", "0"] if kind is bool else None,
                            help=f"{comments.get(name, '')} (default: {globals()[name]})".replace("%", "%%"))
    given = vars(parser.parse_args(argv))
    for name, kind in kinds.items():  # the given values and the file's own, checked alike
        value, low = given.get(name, globals()[name]), LOWEST.get(name, -math.inf)  # whole: LOWEST's ints (sizes,
        whole = type(low) is int or name not in LOWEST and kind is int and value % 1 == 0  # counts), or a new int
        if kind in (int, float) and not low <= value < (2**31 if whole else math.inf) or whole and value % 1:
            where = f"--{name}={value:.15g}" if name in given else f"{name} = {value!r} in {Path(__file__).name}"
            sys.exit(f"error: {where}: {name} must be a {'whole number below 2**31' if whole else 'finite number'}"
                     + (f", at least {low}" if low > -math.inf else ""))  # NaN and -inf fail at low <= value too
        globals()[name] = (value in ("true", "1", True) if kind is bool else value if kind is str else
                           int(value) if whole else float(value))
    outputs = {name: os.path.realpath(globals()[name]) for name in HYPERPARAMETERS  # each the file it is, through
               if name.endswith("_path") and name != "data_path" and globals()[name]}  # any link, in any spelling
    for name, real in outputs.items():
        path, folder = globals()[name], os.path.dirname(real)
        why = ("exists, and a run writes only new files" if os.path.lexists(path) and name != "ckpt_path" else
               "is the same file as another output" if list(outputs.values()).count(real) > 1 else
               "is in no folder that exists" if not os.path.isdir(folder) else
               "is in a read-only folder" if not os.access(folder, os.W_OK) else "")
        if why:  # the text exists, so it is never written
            sys.exit(f"error: --{name}={path} {why}")
    return list(given)


def pick_device(name):
    """'auto' picks cuda:0, then mps, then cpu; any other must be here, a GPU one this PyTorch has kernels for."""
    present = [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    present += ["mps"] * torch.backends.mps.is_available() + ["cpu"]
    chosen = present[0] if name == "auto" else "cuda:0" if name == "cuda" else name  # indexed, as set_device needs
    if chosen not in present:
        sys.exit(f"error: --device={name} is not here; use auto or one of {', '.join(present)}")
    built = [int(arch[3:].rstrip("af")) for arch in torch.cuda.get_arch_list() if arch.startswith("sm_")]
    major, minor = torch.cuda.get_device_capability(chosen) if built and chosen.startswith("cuda") else (0, 0)
    if major and not any(sm // 10 == major and sm % 10 <= minor for sm in built):  # sm_XY runs on X.Z, Z >= Y
        sys.exit(f"error: this PyTorch has no kernels for compute {major}.{minor}; install its CUDA 12.6 build:"
                 " pip install torch --index-url https://download.pytorch.org/whl/cu126")
    return torch.device(chosen)


def load_text(path):
    """The training text: a regular file (a FIFO would be read forever) of UTF-8 text, neither empty nor binary."""
    try:
        text = Path(path).read_text(encoding="utf-8") if os.path.isfile(path) else None
    except (OSError, UnicodeDecodeError) as error:
        sys.exit(f"error: cannot read {path}: {getattr(error, 'strerror', None) or 'not UTF-8 text'}")
    if not text or "\0" in text:
        sys.exit(f"error: cannot read {path}: " + ("binary" if text else "empty" if text == "" else
                                                   "not a regular file" if os.path.exists(path) else "no such file"))
    return text


def write_atomically(path, data):
    """Write bytes to a new file beside path, then rename it over path; a failed write (a full disk) leaves path."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "xb") as file:  # x: never over another file
            file.write(data)
        os.replace(temporary, path)
    except OSError as error:
        if not isinstance(error, FileExistsError) and os.path.exists(temporary):  # ours: it goes
            os.remove(temporary)
        sys.exit(f"error: cannot write {path}: {error.strerror}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (KeyboardInterrupt, BrokenPipeError) as exception:  # Ctrl-C, or stdout closed early (| head): no traceback
        if isinstance(exception, BrokenPipeError):  # nothing more into the closed pipe, at exit either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(130 if isinstance(exception, KeyboardInterrupt) else 141)  # the shell's status for SIGINT, SIGPIPE
    except RuntimeError as error:  # out of memory (CPU or GPU) or torch.compile failing: one line, no traceback
        size = re.search(r"(?i)tried to allocate ([\d.]+ \w+)", str(error))
        if size or type(error).__module__ in ("torch._dynamo.exc", "torch._inductor.exc"):
            sys.exit(f"error: out of memory (tried to allocate {size[1]}); try smaller sizes" if size else
                     f"error: torch.compile failed ({str(error).splitlines()[0]}); run with --compile=False")
        raise
