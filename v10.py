"""v9's GPT on byte-pair tokens: a byte-level BPE tokenizer learned from the training text.

New in this file, after v9.py: the model reads tokens, not characters. train_bpe starts from the train
split's UTF-8 bytes (256 tokens: any text, any prompt) and merges the commonest adjacent pair into a new
token until there are vocab_size; the merges travel in the checkpoint. Step lines give bits per character.

    python v10.py                                                # on a GPU
    python v10.py --batch_size=32 --block_size=64 --n_embd=128 --n_head=4 --n_layer=4 --eval_interval=500
"""

import argparse
import contextlib
import datetime
import gc
import hashlib
import io
import math
import os
import re
import shlex
import signal
import sys
import tokenize
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

# hyperparameters (each can be set on the command line: --name=value)
batch_size = 32  # independent sequences processed in parallel: 32 x 256 tokens, about 16,000 characters a step
block_size = 256  # maximum context length for predictions, in tokens
max_iters = 2000  # optimizer steps
eval_interval = 100  # steps between loss estimates
learning_rate = 1e-3  # peak AdamW step size, reached after the warmup
min_lr = 1e-4  # the step size the cosine schedule ends at
warmup_iters = 100  # steps of linear warmup from zero to learning_rate
weight_decay = 0.1  # AdamW weight decay, applied to 2-D weights only (matrices, embeddings)
beta2 = 0.99  # AdamW's second-moment decay: a shorter memory suits few, small steps
grad_clip = 1.0  # gradients are rescaled to at most this global norm
n_embd = 384  # embedding dimension: the width of every token's vector
n_head = 6  # attention heads, each of size n_embd // n_head
n_layer = 6  # transformer blocks stacked
dropout = 0.2  # fraction of activations zeroed during training, against overfitting
max_new_tokens = 2000  # tokens sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("input.txt"))  # training text: any UTF-8 file
seed = 1337  # random seed: the same seed gives the same run
out_path = ""  # file the sample is also written to ('' = printed only)
dtype = "auto"  # what matmuls compute in: bfloat16, float16 or float32 ('auto': by the GPU; float32 off a GPU)
compile = True  # torch.compile the training step on CUDA (never on CPU or mps)
ckpt_path = str(Path(__file__).with_suffix(".pt"))  # the training state, saved at every evaluation ('' = none)
resume = False  # continue the run saved at ckpt_path, up to max_iters steps in all
sample_only = False  # load ckpt_path, sample, and exit without training
prompt = ""  # text the sample continues ('' = start from a new line)
temperature = 1.0  # divides the logits before sampling: below 1 safer, above 1 wilder; 0: always the likeliest
top_k = 0  # sample from the top_k likeliest tokens only (0 = from all)
dist_timeout = 300  # seconds a process waits for the others before the run fails
vocab_size = 512  # the tokenizer's size: 256 bytes and vocab_size - 256 merges learned from the training text
HYPERPARAMETERS = [name for name, value in globals().items()  # the names above: --name=value sets them
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]
# the smallest value of each number, checked by parse_args; an int makes it whole (a size, a count)
LOWEST = dict(batch_size=1, block_size=1, max_iters=0, eval_interval=1, max_new_tokens=0, seed=0,
              n_embd=1, n_head=1, n_layer=1, warmup_iters=0, weight_decay=0.0, beta2=0.0, top_k=0, temperature=0.0,
              dist_timeout=1, vocab_size=256)
# the processes of the run, as torchrun starts them (not options: torchrun sets them)
RANK = int(os.environ.get("RANK", 0))  # this process's place in the run: set by torchrun; a plain run is 0 of 1
LOCAL_RANK = int(os.environ.get("LOCAL_RANK", 0))  # its place on this machine: the GPU it takes
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", 1))  # the processes of the run


def check_hyperparameters():
    """A value no run can use stops the run here, with one line."""
    if learning_rate <= 0:
        sys.exit(f"error: --learning_rate must be above 0, got {learning_rate}")
    if n_embd % n_head:  # every head gets the same share of the embedding
        sys.exit(f"error: --n_embd={n_embd} must be a multiple of --n_head={n_head}")
    if not 0 <= min_lr <= learning_rate or beta2 >= 1 or grad_clip <= 0:
        sys.exit(f"error: need 0 <= --min_lr <= --learning_rate, --beta2 < 1 and --grad_clip > 0;"
                 f" got {min_lr}, {beta2} and {grad_clip}")
    if not 0 <= dropout < 1:
        sys.exit(f"error: --dropout must be at least 0 and below 1, got {dropout}")
    if dtype not in ("auto", "bfloat16", "float16", "float32"):
        sys.exit(f"error: --dtype must be auto, bfloat16, float16 or float32, got {dtype}")
    if prompt.encode("utf-8", "replace").decode("utf-8") != prompt:  # bytes from the shell that are not UTF-8
        sys.exit("error: --prompt is not UTF-8 text")
    if batch_size % WORLD_SIZE:  # every process takes an equal share of each batch
        sys.exit(f"error: --batch_size={batch_size} won't split into {WORLD_SIZE} equal shares, one for each process")
    if sample_only and WORLD_SIZE > 1:
        sys.exit("error: --sample_only=True samples in one process: run it with python, not torchrun")


# ---- data -----------------------------------------------------------------

def merge(ids, pair, new):
    """ids (n,) with each occurrence of pair replaced by the one token new, left to right without overlap:
    [7 1 2 1 2 5] with (1, 2) -> 9 gives [7 9 9 5]. In "aaaa", (a, a) starts at 0, 1 and 2, but the one at 1
    overlaps the one kept at 0 and is skipped: [new new]; "aaa" gives [new a]."""
    starts = ((ids[:-1] == pair[0]) & (ids[1:] == pair[1])).nonzero().flatten()  # (k,) where occurrences start
    if pair[0] == pair[1]:  # only then can two occurrences overlap: keep each one that starts past the last kept
        kept = []
        for i in starts.tolist():
            if not kept or i > kept[-1] + 1:
                kept.append(i)
        starts = torch.tensor(kept, dtype=torch.long)
    ids = ids.clone()
    ids[starts] = new  # the first token of each occurrence becomes new,
    ids[starts + 1] = -1  # and its second token is marked and dropped
    return ids.masked_select(ids >= 0)  # (n - k,)


def train_bpe(text, vocab_size):
    """The merges, in order, that byte-pair encoding learns on the UTF-8 bytes of text: merge i joins the
    most frequent adjacent pair into token 256 + i; a tie goes to the pair that occurs first.

    "aaabdaaabac": its pairs aa aa ab bd da aa aa ab ba ac hold aa 4 times, so merge 256 is (a, a): [256 a b d
    256 a b a c]. Now (256, a) and (a, b) both occur twice; (256, a) occurs first, so merge 257 is (256, a).
    """
    ids = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)  # (n,) the raw bytes
    merges = []
    for new in range(256, vocab_size):
        if len(ids) < 2:  # no pair left to merge
            break
        pairs = ids[:-1] * new + ids[1:]  # (n-1,) each pair (a, b) as a * new + b: all ids < new, so divmod undoes it
        counts = torch.bincount(pairs)  # all pairs counted at once, overlaps too: "aaa" holds (a, a) twice
        top = pairs[counts.index_select(0, pairs) == counts.max()]  # the top pairs where they occur, in order
        merges.append(divmod(top[0].item(), new))  # the first of them: (a, b)
        ids = merge(ids, merges[-1], new)
    return merges


def build_tokenizer(merges):
    """Byte-level BPE: encode applies the merges in order, decode joins the tokens' bytes (U+FFFD if not UTF-8);
    vocab holds each token's bytes."""
    vocab = [bytes([i]) for i in range(256)]  # token -> the bytes it stands for
    for a, b in merges:
        vocab.append(vocab[a] + vocab[b])

    def encode(s):
        ids = torch.tensor(list(s.encode("utf-8")), dtype=torch.long)
        for new, pair in enumerate(merges, start=256):  # as minbpe's lowest-rank-first: a later merge
            ids = merge(ids, pair, new)  # never makes a pair of two older tokens
        return ids.tolist()  # string -> list of integers

    def decode(ids):
        return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")  # list of integers -> string

    return encode, decode, vocab


def split_data(data):
    """First 90% for training, the rest for validation; each must hold a full window."""
    n = int(0.9 * len(data))
    if min(n, len(data) - n) <= block_size:
        sys.exit(f"error: the text is too short: both splits need over block_size={block_size} characters")
    return data[:n], data[n:]


def learn_merges(train_text):
    """The merges train_bpe learns on the train split, or a one-line error where they cannot make vocab_size tokens."""
    if vocab_size - 256 >= len(train_text.encode("utf-8")):  # each merge shortens the text by one token
        sys.exit(f"error: --vocab_size={vocab_size} needs more merges than the training text has bytes")
    merges = train_bpe(train_text, vocab_size)
    if len(merges) < vocab_size - 256:  # the whole train split became one token: nothing to train on
        sys.exit(f"error: the training text yields {256 + len(merges)} tokens only; pass a smaller --vocab_size")
    return merges


def encode_splits(train_text, val_text, encode, device):
    """Both splits as tokens on device, each longer than a window; says how many characters a token holds."""
    train_data = torch.tensor(encode(train_text), dtype=torch.long, device=device)
    val_data = torch.tensor(encode(val_text), dtype=torch.long, device=device)
    if min(len(train_data), len(val_data)) <= block_size:
        sys.exit(f"error: the text is too short: both splits need over block_size={block_size} tokens")
    print(f"{vocab_size} tokens: {len(val_text) / len(val_data):.2f} characters per token on the val text")
    return train_data, val_data


def get_batch(data, generator):
    """Random windows of data: inputs x and targets y, y being x shifted by one token."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device, generator=generator)
    windows = data[ix + torch.arange(block_size + 1, device=data.device)]  # one gather: (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # (B, T) each


def eval_windows(data, every=1):
    """Every `every`-th non-overlapping block_size window of data, as inputs and targets (N, T): for the train split,
    every so many that there are about as many as the val split's windows, spread evenly over it."""
    starts = torch.arange(0, (len(data) - 1) // block_size, every, device=data.device) * block_size
    windows = data[starts[:, None] + torch.arange(block_size + 1, device=data.device)]  # (N, T + 1)
    return windows[:, :-1], windows[:, 1:]


# ---- model ----------------------------------------------------------------

class MultiHeadAttention(nn.Module):
    """Causal self-attention of num_heads heads, computed for all heads at once."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(n_embd, 3 * num_heads * head_size, bias=False)  # all heads' q, k, v
        self.proj = nn.Linear(head_size * num_heads, n_embd)  # back into the residual path
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, T, C) -> 3 x (B, T, num_heads * head_size)
        q, k, v = (t.view(B, T, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # softmax(q k^T / sqrt(hs)) v with the causal mask, in one fused kernel
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout if self.training else 0.0,
                                             is_causal=True)  # (B, nh, T, hs)
        out = out.transpose(1, 2).reshape(B, T, -1)  # heads side by side: (B, T, num_heads * head_size)
        return self.dropout(self.proj(out))  # (B, T, n_embd)


class FeedForward(nn.Module):
    """A position-wise MLP: each position computes on what attention gathered for it."""

    def __init__(self, n_embd):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, n_embd) -> (B, T, 4 * n_embd)
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),  # (B, T, 4 * n_embd) -> (B, T, n_embd)
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Transformer block: communication (attention) followed by computation (feed-forward)."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        self.attention = MultiHeadAttention(n_head, n_embd // n_head)
        self.feed_forward = FeedForward(n_embd)
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.attention(self.ln1(x))  # residual connections: each sub-layer adds to x,
        x = x + self.feed_forward(self.ln2(x))  # reading a normalised copy of it (pre-norm)
        return x


class GPTLanguageModel(nn.Module):
    """Token and position embeddings, self-attention, then a linear map to next-token logits."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)  # final layer norm
        self.lm_head = nn.Linear(n_embd, vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        """Small N(0, 0.02) weights and zero biases: PyTorch's N(0, 1) embeddings would swamp
        the residual stream, and the deeper model learns markedly slower from them."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T) -> (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, n_embd)
        x = tok_emb + pos_emb  # broadcast over the batch: (B, T, n_embd)
        x = self.blocks(x)  # (B, T, n_embd)
        x = self.ln_f(x)  # (B, T, n_embd)
        logits = self.lm_head(x)  # (B, T, n_embd) -> (B, T, vocab_size)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, vocab_size) vs (B*T,)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=0):
        """Extend idx (B, T) by max_new_tokens tokens, each sampled from the model."""
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -block_size:]  # the position table has block_size rows: crop the context
            logits, _ = self(idx_cond)  # (B, T, vocab_size)
            logits = logits[:, -1, :]  # the last position only: (B, vocab_size)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))  # the others can never be drawn
            if temperature < torch.finfo(logits.dtype).tiny:  # 0, or too small for the logits' dtype: greedy,
                idx_next = logits.argmax(dim=-1, keepdim=True)  # the likeliest token, no draw: (B, 1)
            else:  # below 1 safer, above 1 wilder; the largest logit made 0 first, so no division overflows
                probs = F.softmax((logits - logits.amax(dim=-1, keepdim=True)) / temperature, dim=-1)  # (B, vocab_size)
                idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T + 1)
        return idx


# ---- processes ------------------------------------------------------------

def join_processes(torch_device):
    """Under torchrun, this process's own GPU (cuda:LOCAL_RANK), once it has joined the run's process group (NCCL;
    gloo on a CPU), whose collectives wait dist_timeout seconds for the others. A plain run joins nothing."""
    if WORLD_SIZE > 1:
        torch_device = pick_device(f"cuda:{LOCAL_RANK}") if torch_device.type == "cuda" else torch_device
        timeout = datetime.timedelta(seconds=dist_timeout)
        dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo", timeout=timeout)
    return torch_device


def share_out(model):
    """What training runs on many processes: the model that DDP wraps, to average the gradients over the processes as
    backward computes them; the rows of each batch that this process takes; a gloo group, to agree on plain values
    whatever the GPUs' backend. A plain run: the model itself, every row, no group."""
    if WORLD_SIZE == 1:
        return model, slice(None), None
    device_ids = [model.lm_head.weight.device.index] if model.lm_head.weight.is_cuda else None
    rows = slice(RANK * batch_size // WORLD_SIZE, (RANK + 1) * batch_size // WORLD_SIZE)
    return DDP(model, device_ids=device_ids), rows, dist.new_group(backend="gloo")


def gathered(value, group):
    """value from every process, in the order of their ranks, known to all ([value] in a plain run)."""
    if WORLD_SIZE == 1:
        return [value]
    values = [None] * WORLD_SIZE
    dist.all_gather_object(values, value, group=group)  # over gloo: plain Python values and CPU tensors
    return values


def leave_processes():
    """All together, the processes leave the group: sampling needs no other process."""
    if dist.is_initialized():
        dist.barrier()  # no process tears its end down while another still talks
        gc.collect()  # the DDP module of train(), which holds the group, goes first
        dist.destroy_process_group()


# ---- checkpoints ----------------------------------------------------------

ARCHITECTURE = ["block_size", "n_embd", "n_head", "n_layer", "vocab_size"]  # the shapes of the saved weights
# what each command decides for itself; every other hyperparameter is saved with the run and read back
PER_COMMAND = ["device", "dtype", "compile", "ckpt_path", "resume", "sample_only", "prompt", "temperature", "top_k",
               "max_new_tokens", "out_path", "dist_timeout"]
CONTENTS = dict(script=str, step=int, model=dict, optimizer=dict, rng=list, batches=torch.Tensor, hyperparameters=dict,
                merges=list, text_sha256=str)  # what a checkpoint holds, and of which type


def save_checkpoint(step, model, optimizer, scaler, batch_generator, text, group):
    """The whole training state as torch.save writes it, then the SHA-256 of those bytes, into ckpt_path: written by
    process 0, with every process's random state, so that each goes on with its own dropout masks."""
    rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if model.lm_head.weight.is_cuda else None}
    rng = gathered(rng, group)  # every process takes part
    settings = {name: globals()[name] for name in HYPERPARAMETERS if name not in PER_COMMAND}
    saved = io.BytesIO()  # model is the bare module: its keys carry no "module." or "_orig_mod." prefix
    torch.save({"script": Path(__file__).name, "step": step, "model": model.state_dict(), "rng": rng,
                "batches": batch_generator.get_state(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "hyperparameters": settings, "merges": text["merges"],
                "text_sha256": text["text_sha256"]}, saved)
    if RANK == 0:
        write_atomically(ckpt_path, saved.getvalue() + hashlib.sha256(saved.getvalue()).digest())


def claim():
    """The lock that makes ckpt_path this run's: a second run on it, fresh or resumed, stops here. The system drops
    the lock when the file is closed, at the latest with the process, so a crashed run blocks nothing. The caller
    keeps the file open while the run lasts. POSIX only: Windows has no fcntl, and no lock."""
    if not ckpt_path or sample_only or RANK:  # sampling writes no checkpoint; process 0 writes the run's
        return None
    try:
        import fcntl
    except ImportError:
        return None
    lock = open(f"{ckpt_path}.lock", "a")  # a file of its own: the checkpoint itself is replaced at every save
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"error: {ckpt_path} is in use by another run, which holds {ckpt_path}.lock")
    return lock


def read_checkpoint(path):
    """What torch.save wrote to path, as a dict, if the SHA-256 after it matches and it loads as tensors and plain
    containers only (weights_only: a file that would run code is refused); else a one-line error."""
    saved = Path(path).read_bytes() if os.path.isfile(path) else b""
    if hashlib.sha256(saved[:-32]).digest() != saved[-32:]:  # missing, truncated, altered, or no checkpoint
        sys.exit(f"error: --ckpt_path={path}: no checkpoint there, or one changed since it was saved")
    try:
        state = torch.load(io.BytesIO(saved[:-32]), map_location="cpu", weights_only=True)
    except Exception:
        sys.exit(f"error: {path}: holds objects that loading would have to run as code")
    return state if isinstance(state, dict) else {}


def open_checkpoint(argv, given):
    """For --resume or --sample_only, the run saved at ckpt_path with its settings read back under this command's;
    else None, and a fresh run, which never replaces a checkpoint."""
    if not (resume or sample_only):
        if ckpt_path and os.path.lexists(ckpt_path):
            sys.exit(f"error: {ckpt_path} exists: go on with --resume=True, or pass another --ckpt_path")
        return None
    state = read_checkpoint(ckpt_path)
    owner = state.get("script")
    if owner != Path(__file__).name:
        sys.exit(f"error: {ckpt_path}: a checkpoint of {owner or 'another program'}, not of {Path(__file__).name}")
    if wrong := [key for key, kind in CONTENTS.items() if not isinstance(state.get(key), kind)]:
        sys.exit(f"error: {ckpt_path}: a checkpoint of {owner} without a valid {wrong[0]!r}")
    values = {name: value for name, value in state["hyperparameters"].items() if name in HYPERPARAMETERS}
    if clash := [name for name in ARCHITECTURE if name in given and globals()[name] != values.get(name)]:
        sys.exit(f"error: {ckpt_path} holds a model with --{clash[0]}={values.get(clash[0])}; leave --{clash[0]} out")
    if dropped := sorted(state["hyperparameters"].keys() - values.keys()):  # settings the file no longer has
        print(f"{ckpt_path}: dropped, no longer in {Path(__file__).name}: {', '.join(dropped)}")
    if kept := [f"{n}: {v} saved, {globals()[n]} in the file" for n, v in values.items() if v != globals()[n]
                and n not in given]:
        print(f"{ckpt_path}: saved values in force over the file's: {'; '.join(kept)}")
    parse_args([f"--{name}={value}" for name, value in values.items()] + argv)  # this command's values win
    print(f"{ckpt_path}: saved at step {state['step']}")
    return state


def text_fields(text, merges, state):
    """What a checkpoint keeps of its text, the tokenizer's merges and the SHA-256; a run resumed on another text is
    refused."""
    fields = {"merges": merges, "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    if resume and not sample_only and {key: state[key] for key in fields} != fields:
        sys.exit(f"error: {data_path} is not the text {ckpt_path} was trained on; pass that one as --data_path")
    return fields


def load_weights(model, state):
    """The saved run's weights into model; a file whose weights are not the model its settings describe is refused."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:  # keys or shapes that are not this model's
        sys.exit(f"error: {ckpt_path} holds the weights of another model than its hyperparameters describe")


def restore(state, optimizer, scaler, batch_generator):
    """A resumed run's moments (under this command's settings), loss scale, batches and randomness, as saved: each
    process its own random state if as many go on as were saved, else fresh ones. Returns whether there are steps
    left to take up to max_iters, and says so where there are none."""
    optimizer.load_state_dict({**state["optimizer"], "param_groups": optimizer.state_dict()["param_groups"]})
    if state.get("scaler"):  # none where the run was saved without loss scaling
        scaler.load_state_dict(state["scaler"])
    if len(state["batches"]) == len(batch_generator.get_state()):  # not if saved on another kind of device
        batch_generator.set_state(state["batches"])
    if len(state["rng"]) == WORLD_SIZE:
        torch.set_rng_state(state["rng"][RANK]["cpu"])
        if state["rng"][RANK]["cuda"] is not None and torch.cuda.is_initialized():  # GPU dropout: the GPU's generator
            torch.cuda.set_rng_state(state["rng"][RANK]["cuda"])
    else:
        print(f"{ckpt_path}: saved by {len(state['rng'])} processes, resumed by {WORLD_SIZE}: dropout draws afresh")
    if state["step"] >= max_iters:
        print(f"{ckpt_path}: nothing left to train up to --max_iters={max_iters}; a larger one goes further")
    return state["step"] < max_iters


# ---- stopping safely --------------------------------------------------------

@contextlib.contextmanager
def stop_requests():
    """While in the with block, Ctrl-C or SIGTERM only asks to stop: the list yielded gets its number, and training
    finishes its step, saves it and returns. A second one acts at once, as usual; after the block, all is as before.
    Under torchrun each process takes every signal as a request: torchrun passes a Ctrl-C on to the processes that
    the terminal has already sent it to, and it ends them itself (SIGKILL after its --shutdown_timeout, 30 s)."""
    asked, previous = [], {}

    def ask(signum, frame):
        if not asked and RANK == 0:  # under torchrun, once for the terminal's Ctrl-C and once for torchrun's
            print("stopping after this step, to save" + "; Ctrl-C again stops at once" * (WORLD_SIZE == 1),
                  file=sys.stderr)  # stdout may be printing as the signal comes: a stream cannot be entered twice
        asked.append(signum)
        if WORLD_SIZE == 1:
            signal.signal(signum, previous[signum])  # a second one acts at once, as usual

    previous.update({s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)})
    try:
        yield asked
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def continue_command(given):
    """The command that takes a stopped run on: this one as invoked, with each given value as it was read; under
    torchrun, the launcher for one machine (across machines, each one's torchrun options go before the script)."""
    launcher = ["torchrun", "--standalone", f"--nproc_per_node={WORLD_SIZE}"] if WORLD_SIZE > 1 else [sys.executable]
    return shlex.join(launcher + [os.path.relpath(__file__)] + [f"--{name}={globals()[name]}" for name in given
                                                                if name != "resume"] + ["--resume=True"])


# ---- training -------------------------------------------------------------

def precision(device):
    """The dtype to compute in. 'auto': bfloat16 from compute capability 8.0 on, whose tensor cores multiply it fast;
    float16 on an older GPU (T4, V100), which would emulate bfloat16 slowly, though is_bf16_supported() says True."""
    if dtype == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    return getattr(torch, "float32" if dtype == "auto" else dtype)  # float32 off a GPU


def autocast(device):
    """Autocast to the precision's dtype on tensor cores, several times faster than float32; none in float32."""
    return torch.autocast(device.type, dtype=precision(device), enabled=precision(device) != torch.float32)


def compile_off(device):
    """Why the training step runs uncompiled ('' where torch.compile is on): it needs CUDA and a working Triton."""
    if not compile or device.type != "cuda":
        return "--compile=False" if not compile else "not CUDA"
    try:  # what Inductor itself asks, in a private module: a release that moves it means no compile
        from torch.utils._triton import has_triton
        return "" if has_triton() else "no working Triton"
    except ImportError:
        return "no working Triton"


@torch.no_grad()
def estimate_loss(model, splits):
    """Mean loss over the given windows of each split, with the model in eval mode."""
    model.eval()
    out = {}
    for split, (x, y) in splits.items():
        total = torch.zeros((), device=x.device)  # stays on the device: no sync per batch
        count, x, y = len(x), x[RANK::WORLD_SIZE], y[RANK::WORLD_SIZE]  # this process's share
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            _, loss = model(xb, yb)
            total += loss.float() * len(xb)  # weighted by size: the last batch may be smaller
        if WORLD_SIZE > 1:
            dist.all_reduce(total)  # the sum over all processes' shares, known to all
        out[split] = (total / count).item()
    model.train()
    return out


def configure_optimizer(model):
    """AdamW that decays the 2-D weights (linear layers, embedding tables), not biases or LayerNorm
    gains; fused on CUDA."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, beta2), fused=params[0].is_cuda)


def lr_at(step):
    """Linear warmup to learning_rate over warmup_iters, then cosine decay to min_lr at max_iters."""
    if step < warmup_iters:
        return learning_rate * (step + 1) / warmup_iters
    progress = min(1.0, (step - warmup_iters) / max(1, max_iters - warmup_iters))
    return min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * progress))


def train(model, train_data, val_data, val_chars, state, asked):
    """max_iters AdamW steps on random batches, the losses every eval_interval steps and at the end, each evaluation
    saved with the training state (state: the text's, a resumed run's); returns the signal that stopped it, or 0."""
    optimizer = configure_optimizer(model)
    scaler = torch.amp.GradScaler(train_data.device.type, enabled=precision(train_data.device) == torch.float16)
    windows = {"train": eval_windows(train_data, len(train_data) // len(val_data)), "val": eval_windows(val_data)}
    step_model, rows, cpu_group = share_out(model)  # DDP, this process's rows of each batch, a group to agree in
    step_model = step_model if compile_off(train_data.device) else torch.compile(step_model)  # evaluation: eager
    batch_generator = torch.Generator(train_data.device).manual_seed(seed)  # the same global batches everywhere
    if "step" in state and not restore(state, optimizer, scaler, batch_generator):  # resumed: as if never stopped
        return 0  # no step left to take
    for step in range(state.get("step", 0), max_iters + 1):
        signum = max(gathered(asked[0] if asked else 0, cpu_group))  # agreed here: all stop after the same step
        if signum or step % eval_interval == 0 or step == max_iters:
            with autocast(train_data.device):
                losses = estimate_loss(model, windows)
            if not math.isfinite(losses["train"] + losses["val"]):  # NaN or inf: training will not recover
                sys.exit(f"error: the loss is not finite at step {step}; try a smaller --learning_rate")
            if ckpt_path:  # before the step line: should printing fail (a closed pipe), the step is kept all the same
                save_checkpoint(step, model, optimizer, scaler, batch_generator, state, cpu_group)
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                  f" ({losses['val'] * len(val_data) / val_chars / math.log(2):.3f} bits/char)", flush=True)
            if signum:
                return signum
        if step < max_iters:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            x, y = get_batch(train_data, batch_generator)  # the global batch: (batch_size, T) each
            with autocast(train_data.device):
                _, loss = step_model(x[rows], y[rows])  # this process's rows
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # float16: the loss scaled up, so that small gradients do not round to 0
            scaler.unscale_(optimizer)  # the gradients as they are, to clip
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)  # a step with an inf or a NaN among the gradients is skipped
            scaler.update()  # the scale halves after a skipped step and doubles after 2000 good ones
    return 0


def sample(model, encode, decode, device):
    """max_new_tokens after the prompt, in float32 whatever the GPU; printed, and written to out_path if given."""
    model.eval()  # sample with training-only behaviour switched off
    context = torch.tensor([encode(prompt or "\n")], dtype=torch.long, device=device)  # a new line if no prompt
    text = decode(model.generate(context, max_new_tokens, temperature, top_k)[0].tolist())
    print(text, flush=True)
    if out_path:
        write_atomically(out_path, text.encode("utf-8"))


def main(argv):
    sys.stdout = open(os.devnull, "w") if RANK else sys.stdout  # one voice: process 0 prints for the run
    given = parse_args(argv)  # --name=value for the hyperparameters above
    lock = claim()  # ckpt_path belongs to this run while main runs (held, not used)
    state = open_checkpoint(argv, given)  # the saved run, for --resume and --sample_only
    check_hyperparameters()  # this command's values, with the saved run's
    torch_device = join_processes(pick_device(device))  # under torchrun, this process's GPU, in the run's group
    torch.manual_seed(seed + RANK)  # each process its own dropout masks; batches have their own generator
    gpu = ""  # its name and compute capability, on the start-up line
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)  # the GPU that compiled kernels are built and cached for
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for the matmuls left in float32
        gpu = " ({}, compute {}.{})".format(torch.cuda.get_device_name(), *torch.cuda.get_device_capability())
    scaled, off = " with loss scaling" * (precision(torch_device) == torch.float16), compile_off(torch_device)
    print(f"{torch_device}{gpu}: {precision(torch_device)}{scaled}; torch.compile {'off: ' + off if off else 'on'}")
    text = "" if sample_only else load_text(data_path)  # sampling needs only the saved merges
    train_text, val_text = ("", "") if sample_only else split_data(text)  # by characters, before the tokenizer learns
    merges = state["merges"] if state else learn_merges(train_text)  # the train split's, only
    encode, decode, _ = build_tokenizer(merges)  # of vocab_size tokens
    fields = text_fields(text, merges, state)  # what a checkpoint keeps of its text

    model = GPTLanguageModel(vocab_size).to(torch_device)
    if state:
        load_weights(model, state)
    operations = 6 * sum(p.numel() for p in model.parameters()) * batch_size * block_size * max_iters
    if device == "auto" and torch_device.type == "cpu" and operations > 2e11 * 3600 and not sample_only:
        sys.exit("error: no GPU, and these sizes take hours on a CPU; see --help for a CPU-sized run, or --device=cpu")
    if not sample_only:
        train_data, val_data = encode_splits(train_text, val_text, encode, torch_device)
        print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {torch_device}")
        with stop_requests() as asked:  # Ctrl-C or SIGTERM: the step ends, is saved, and the run stops
            signum = train(model, train_data, val_data, len(val_text), state or fields, asked)
        leave_processes()
        if signum:  # the same command, resumed, goes on
            print(f"continue with: {continue_command(given)}" if ckpt_path else "nothing was saved")
            sys.exit(128 + signum)
    if torch_device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(torch_device) / 2**20:,.0f} MiB")
    if RANK == 0:  # process 0 samples for the run
        sample(model, encode, decode, torch_device)


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
