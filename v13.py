"""v12's GPT, sampled fast: a KV cache keeps each layer's keys and values, so each new token is computed alone.

New in this file, after v12.py: sampling runs the prompt once, filling each attention layer's cache of keys and
values; then each new token goes through the model by itself, at its own position, and attends to the cache,
instead of the whole context running again for every token. Past block_size the cache slides: RoPE makes a
score depend on the distance between positions only, so no cached key needs computing again. Training is v12's.

    python v13.py                                                # on a GPU
    python v13.py --batch_size=32 --block_size=64 --n_embd=128 --n_head=4 --n_layer=4 --eval_interval=500
"""

import argparse
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
learning_rate = 1e-3  # peak step size of AdamW and of Muon, reached after the warmup
min_lr = 1e-4  # the step size the cosine schedule ends at
warmup_iters = 100  # steps of linear warmup from zero to learning_rate
weight_decay = 0.1  # decay of the 2-D weights, by AdamW and Muon alike (not of the gains)
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
compile = True  # torch.compile the training step on CUDA (never on CPU or mps)
ckpt_path = str(Path(__file__).with_suffix(".pt"))  # the training state, saved at every evaluation ('' = none)
resume = False  # continue the run saved at ckpt_path, up to max_iters steps in all
sample_only = False  # load ckpt_path, sample, and exit without training
prompt = ""  # text the sample continues ('' = start from token 0)
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
    if prompt.encode("utf-8", "replace").decode("utf-8") != prompt:  # bytes from the shell that are not UTF-8
        sys.exit("error: --prompt is not UTF-8 text")
    if batch_size % WORLD_SIZE or sample_only and WORLD_SIZE > 1:  # an equal share each; one process samples
        sys.exit(f"error: --batch_size={batch_size} won't split into {WORLD_SIZE} equal shares, or sampling not alone")


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
    """Byte-level BPE: encode applies the merges in order, decode joins the tokens' bytes (U+FFFD if not UTF-8)."""
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

    return encode, decode, len(vocab)


def split_data(data):
    """First 90% for training, the rest for validation; each must hold a full window."""
    n = int(0.9 * len(data))
    if min(n, len(data) - n) <= block_size:
        sys.exit(f"error: the text is too short: both splits need over block_size={block_size} characters")
    return data[:n], data[n:]


def get_batch(data, generator=None):
    """Random windows of data: inputs x and targets y, y being x shifted by one token."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device, generator=generator)
    windows = data[ix + torch.arange(block_size + 1, device=data.device)]  # one gather: (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # (B, T) each


def eval_windows(data, every=1):
    """Every `every`-th non-overlapping block_size window of data, as inputs and targets (N, T)."""
    starts = torch.arange(0, (len(data) - 1) // block_size, every, device=data.device) * block_size
    windows = data[starts[:, None] + torch.arange(block_size + 1, device=data.device)]  # (N, T + 1)
    return windows[:, :-1], windows[:, 1:]


# ---- model ----------------------------------------------------------------

def rotate(x, start=0):
    """RoPE: in each head, channel i is paired with channel i + hs/2 and the pair is turned, at position t, by the
    angle t * 10000^(-2i/hs): fast turns for the first pairs, slow for the last. A query at position t and a key
    at position s then meet at an angle that depends on t - s only, so attention sees how far back a token is.
    With hs = 2 there is one pair and one frequency, 1: the vector (1, 0) at position 3 becomes (cos 3, sin 3).
    x's positions are start, start + 1, ...: a token sampled after the cached ones takes the next position."""
    B, nh, T, hs = x.shape
    frequencies = 10000 ** (-torch.arange(0, hs, 2, device=x.device) / hs)  # (hs/2,)
    angles = torch.arange(start, start + T, device=x.device)[:, None] * frequencies  # (T, hs/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # the rotation of each position's pairs
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) each: the first and second channel of each pair
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # each pair turned: (B, nh, T, hs)


class KVCache:
    """One attention layer's keys and values while sampling: those of the last block_size tokens, the new one among
    them. A learned position table could not slide so: a key cached at position p would need p - 1's embedding
    once the oldest token drops out, that is, computing it again. With RoPE only distances count.
    Past block_size a cached key still carries the context it was computed in, which may reach back past the
    window: the sample differs from v12's, which computes the whole cropped window again for every token."""

    def __init__(self):
        self.k = self.v = None  # (B, nh, T, hs): as attention reads them, after QK-norm and RoPE
        self.position = 0  # the position of the next token to come

    def add(self, k, v):
        """The new tokens' keys and values (B, nh, T_new, hs) after the cached ones: the last block_size of them."""
        self.position += k.size(2)
        if self.k is not None:  # after the cached ones: (B, nh, T + T_new, hs)
            k, v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)
        self.k, self.v = k[:, :, -block_size:], v[:, :, -block_size:]  # past block_size the oldest drop out
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """Causal self-attention of num_heads heads, computed for all heads at once."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(n_embd, 3 * num_heads * head_size, bias=False)  # all heads' q, k, v
        self.proj = nn.Linear(head_size * num_heads, n_embd, bias=False)  # back into the residual path
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, T, C) -> 3 x (B, T, num_heads * head_size)
        q, k, v = (t.view(B, T, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # QK-norm: q and k of unit RMS, so that no logit of q k^T grows unbounded; then RoPE gives them positions
        start = cache.position if cache else 0  # while sampling, x's tokens come after the cached ones
        q, k = (rotate(F.rms_norm(t, (t.size(-1),)), start) for t in (q, k))
        if cache:  # the keys and values of the tokens before x's, and x's: (B, nh, T_cache + T, hs)
            k, v = cache.add(k, v)
        # causal: a prompt attends within itself; a new token alone (T = 1) sees every cached token
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout if self.training else 0.0,
                                             is_causal=T > 1)  # (B, nh, T, hs)
        out = out.transpose(1, 2).reshape(B, T, -1)  # heads side by side: (B, T, num_heads * head_size)
        return self.dropout(self.proj(out))  # (B, T, n_embd)


class FeedForward(nn.Module):
    """A position-wise MLP: each position computes on what attention gathered for it."""

    def __init__(self, n_embd):
        super().__init__()
        self.up = nn.Linear(n_embd, 4 * n_embd, bias=False)  # (B, T, n_embd) -> (B, T, 4 * n_embd)
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=False)  # (B, T, 4 * n_embd) -> (B, T, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(F.relu(self.up(x)).square()))  # ReLU^2: as cheap as ReLU, learns faster


class Block(nn.Module):
    """Transformer block: communication (attention) followed by computation (feed-forward)."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        self.attention = MultiHeadAttention(n_head, n_embd // n_head)
        self.feed_forward = FeedForward(n_embd)
        self.ln1 = nn.RMSNorm(n_embd)  # RMSNorm: LayerNorm without the mean and the bias, as good and simpler
        self.ln2 = nn.RMSNorm(n_embd)

    def forward(self, x, cache=None):
        x = x + self.attention(self.ln1(x), cache)  # residual connections: each sub-layer adds to x,
        x = x + self.feed_forward(self.ln2(x))  # reading a normalised copy of it (pre-norm)
        return x


class GPTLanguageModel(nn.Module):
    """Token embeddings, self-attention with RoPE, then a linear map to next-token logits."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.blocks = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.RMSNorm(n_embd)  # final norm
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, weight in self.named_parameters():  # each block starts as the identity: it adds nothing yet
            if name.endswith("proj.weight"):
                nn.init.zeros_(weight)

    @staticmethod
    def _init_weights(module):
        """Small N(0, 0.02) weights: PyTorch's N(0, 1) embeddings would swamp the residual stream, and the
        deeper model learns markedly slower from them."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, caches=None):
        x = self.token_embedding_table(idx)  # (B, T) -> (B, T, n_embd): positions come in attention, by RoPE
        for block, cache in zip(self.blocks, caches or [None] * len(self.blocks)):
            x = block(x, cache)  # (B, T, n_embd)
        x = self.ln_f(x)  # (B, T, n_embd)
        logits = self.lm_head(x)  # (B, T, n_embd) -> (B, T, vocab_size)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, vocab_size) vs (B*T,)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=0):
        """Extend idx (B, T) by max_new_tokens tokens, each sampled from the model: the prompt runs once, filling
        a cache of each layer's keys and values (prefill); then each new token runs alone against them (decode)."""
        caches = [KVCache() for _ in self.blocks]
        context = idx[:, -block_size:]  # trained on windows of block_size tokens: the prompt, cropped
        for _ in range(max_new_tokens):
            logits, _ = self(context, caches=caches)  # (B, T, vocab_size): the prompt's T, then 1
            logits = logits[:, -1, :]  # the last position only: (B, vocab_size)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))  # the others can never be drawn
            if temperature == 0:  # greedy: the likeliest token, no draw
                idx_next = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:  # below 1 safer, above 1 wilder; the largest logit made 0 first, so no division overflows
                probs = F.softmax((logits - logits.amax(dim=-1, keepdim=True)) / temperature, dim=-1)  # (B, vocab_size)
                idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T + 1)
            context = idx_next  # the next step computes the new token only: (B, 1)
        return idx


# ---- processes ------------------------------------------------------------

RANK = int(os.environ.get("RANK", 0))  # this process's place in the run: set by torchrun; a plain run is 0 of 1
LOCAL_RANK = int(os.environ.get("LOCAL_RANK", 0))  # its place on this machine: the GPU it takes
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", 1))  # the processes of the run


def stop_everywhere(stop, group):
    """The signal that asked any process to stop (0 if none did), known to all."""
    if WORLD_SIZE == 1:
        return stop
    flag = torch.tensor([stop])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
    return int(flag)


# ---- checkpoints ----------------------------------------------------------

ARCHITECTURE = ["block_size", "n_embd", "n_head", "n_layer", "vocab_size"]  # the shapes of the saved weights
# what each command decides for itself; every other hyperparameter is saved with the run and read back
PER_COMMAND = ["device", "compile", "ckpt_path", "resume", "sample_only", "prompt", "temperature", "top_k",
               "max_new_tokens", "out_path", "dist_timeout"]
CONTENTS = dict(script=str, step=int, model=dict, optimizer=list, rng=dict, hyperparameters=dict, merges=list,
                text_sha256=str)  # what a checkpoint holds, and of which type


def save_checkpoint(step, model, optimizers, batch_generator, text_id):
    """The whole training state as torch.save writes it, then the SHA-256 of those bytes, into ckpt_path."""
    rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if model.lm_head.weight.is_cuda else None,
           "batches": batch_generator.get_state()}
    settings = {name: globals()[name] for name in HYPERPARAMETERS if name not in PER_COMMAND}
    saved = io.BytesIO()  # model is the bare module: its keys carry no "module." or "_orig_mod." prefix
    torch.save({"script": Path(__file__).name, "step": step, "model": model.state_dict(), "rng": rng,
                "optimizer": [o.state_dict() for o in optimizers], "hyperparameters": settings, **text_id}, saved)
    write_atomically(ckpt_path, saved.getvalue() + hashlib.sha256(saved.getvalue()).digest())


def open_checkpoint(argv, given):
    """The run saved at ckpt_path for --resume or --sample_only, its settings read back before this command's."""
    if not (resume or sample_only):
        if ckpt_path and os.path.exists(ckpt_path):  # a fresh run never replaces a checkpoint
            sys.exit(f"error: {ckpt_path} exists: go on with --resume=True, or pass another --ckpt_path")
        return None
    saved = Path(ckpt_path).read_bytes() if os.path.isfile(ckpt_path) else b""
    if hashlib.sha256(saved[:-32]).digest() != saved[-32:]:  # missing, truncated, altered, or no checkpoint
        sys.exit(f"error: --ckpt_path={ckpt_path}: no checkpoint there, or one changed since it was saved")
    try:  # weights_only: tensors and plain containers only, so a file that would run code is refused
        state = torch.load(io.BytesIO(saved[:-32]), map_location="cpu", weights_only=True)
    except Exception:
        sys.exit(f"error: {ckpt_path}: holds objects that loading would have to run as code")
    owner = state.get("script") if isinstance(state, dict) else None
    if owner != Path(__file__).name:
        sys.exit(f"error: {ckpt_path}: a checkpoint of {owner or 'another program'}, not of {Path(__file__).name}")
    if wrong := [key for key, kind in CONTENTS.items() if not isinstance(state.get(key), kind)]:
        sys.exit(f"error: {ckpt_path}: a checkpoint of {owner} without a valid {wrong[0]!r}")
    values = state["hyperparameters"]
    if clash := [name for name in ARCHITECTURE if name in given and globals()[name] != values.get(name)]:
        sys.exit(f"error: {ckpt_path} holds a model with --{clash[0]}={values.get(clash[0])}; leave --{clash[0]} out")
    parse_args([f"--{name}={value}" for name, value in values.items()] + argv)  # this command's values win
    print(f"{ckpt_path}: saved at step {state['step']}")
    return state


# ---- training -------------------------------------------------------------

def autocast(device):
    """bf16 autocast on CUDA, where tensor cores multiply bf16 several times faster; float32 elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


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
            with autocast(x.device):
                _, loss = model(xb, yb)
            total += loss.float() * len(xb)  # weighted by size: the last batch may be smaller
        if WORLD_SIZE > 1:
            dist.all_reduce(total)  # the sum over all processes' shares, known to all
        out[split] = (total / count).item()
    model.train()
    return out


def configure_optimizers(model):
    """Muon for the matrices inside the blocks; AdamW for the rest, decaying the embedding table and the head, not
    the RMSNorm gains (fused on CUDA)."""
    matrices = [p for p in model.blocks.parameters() if p.dim() == 2]  # q, k, v, the projections, the MLP's
    params = [p for p in model.parameters() if all(p is not m for m in matrices)]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    adamw = torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, beta2), fused=params[0].is_cuda)
    # match_rms_adamw: Muon's step scaled to the RMS of an AdamW step, so that one learning rate serves both
    muon = torch.optim.Muon(matrices, lr=learning_rate, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
    return [adamw, muon]


def lr_at(step):
    """Linear warmup to learning_rate over warmup_iters, then cosine decay to min_lr at max_iters."""
    if step < warmup_iters:
        return learning_rate * (step + 1) / warmup_iters
    progress = min(1.0, (step - warmup_iters) / max(1, max_iters - warmup_iters))
    return min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * progress))


def train(model, train_data, val_data, text_id=None, state=None, val_chars=0):
    """max_iters steps of AdamW and Muon on random batches, with the losses every eval_interval steps and at the end."""
    on_cuda = train_data.device.type == "cuda"
    optimizers = configure_optimizers(model)
    val_windows = eval_windows(val_data)
    # about as many training windows as validation windows, spread evenly over the training split
    train_windows = eval_windows(train_data, every=max(1, len(train_data) // len(val_data)))
    step_model = DDP(model, device_ids=[train_data.device.index] if on_cuda else None) if WORLD_SIZE > 1 else model
    step_model = torch.compile(step_model) if compile and on_cuda else step_model  # evaluation runs eagerly
    batch_generator = torch.Generator(train_data.device).manual_seed(seed)  # the same global batches everywhere
    mine = slice(RANK * batch_size // WORLD_SIZE, (RANK + 1) * batch_size // WORLD_SIZE)  # this process's rows
    cpu_group = dist.new_group(backend="gloo") if WORLD_SIZE > 1 else None  # to agree on a stop, GPUs aside
    if state:  # the saved run goes on as if it never stopped: its moments (this command's settings), its randomness
        for optimizer, saved in zip(optimizers, state["optimizer"]):
            optimizer.load_state_dict({**saved, "param_groups": optimizer.state_dict()["param_groups"]})
        if len(state["rng"]["batches"]) == len(batch_generator.get_state()):  # not if saved on another device
            batch_generator.set_state(state["rng"]["batches"])
        if RANK == 0:  # process 0's dropout masks go on as saved; the others draw afresh
            torch.set_rng_state(state["rng"]["cpu"])
            if on_cuda and state["rng"]["cuda"] is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"])
    stop = 0  # the signal that asked to stop: the loop ends its step, evaluates, saves and returns it
    usual = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # restored at the end

    def ask_to_stop(signum, frame):
        nonlocal stop
        stop = signum
        signal.signal(signum, usual[signum])  # a second one acts at once, as usual
        print("stopping after this step, to save; Ctrl-C again stops at once", flush=True)

    for s in usual:
        signal.signal(s, ask_to_stop)
    for step in range(state["step"] if state else 0, max_iters + 1):
        stopping = stop_everywhere(stop, cpu_group)  # agreed here, so that all processes stop after this step
        if stopping or step % eval_interval == 0 or step == max_iters:
            losses = estimate_loss(model, {"train": train_windows, "val": val_windows})
            bits = losses["val"] * len(val_data) / (val_chars or len(val_data)) / math.log(2)  # val NLL / its chars
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                  f" ({bits:.3f} bits/char)", flush=True)
            if not math.isfinite(losses["train"] + losses["val"]):  # NaN or inf: training will not recover
                sys.exit(f"error: the loss is not finite at step {step}; try a smaller --learning_rate")
            if ckpt_path and RANK == 0:
                save_checkpoint(step, model, optimizers, batch_generator, text_id)
            if stopping:
                break
        if step < max_iters:
            for group in optimizers[0].param_groups + optimizers[1].param_groups:  # one schedule for both
                group["lr"] = lr_at(step)
            x, y = get_batch(train_data, batch_generator)  # the global batch: (batch_size, T) each
            with autocast(train_data.device):
                _, loss = step_model(x[mine], y[mine])  # this process's rows
            model.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over the processes as they are computed
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            for optimizer in optimizers:
                optimizer.step()
    for s, handler in usual.items():  # signals act as usual again
        signal.signal(s, handler)
    return stop_everywhere(stop, cpu_group)  # the signal that ended the run early (in any process), or 0


def main(argv):
    sys.stdout = open(os.devnull, "w") if RANK else sys.stdout  # one voice: process 0 prints for the run
    given = parse_args(argv)  # --name=value for the hyperparameters above
    state = open_checkpoint(argv, given)  # None for a fresh run
    check_hyperparameters()  # this command's values, with the saved run's
    torch_device = pick_device(device)
    if WORLD_SIZE > 1:  # one of torchrun's processes: its own GPU, in the run's process group
        torch_device = pick_device(f"cuda:{LOCAL_RANK}") if torch_device.type == "cuda" else torch_device
        timeout = datetime.timedelta(seconds=dist_timeout)
        dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo", timeout=timeout)
    torch.manual_seed(seed + RANK)  # each process its own dropout masks; batches have their own generator
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)  # the GPU that compiled kernels are built and cached for
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for the matmuls left in float32
    text = "" if sample_only else load_text(data_path)  # sampling needs only the saved merges
    train_text, val_text = ("", "") if sample_only else split_data(text)  # by characters, before the tokenizer learns
    if vocab_size - 256 >= len(train_text.encode("utf-8")) and not state:  # each merge shortens the text by one
        sys.exit(f"error: --vocab_size={vocab_size} needs more merges than the training text has bytes")
    merges = state["merges"] if state else train_bpe(train_text, vocab_size)  # the train split's, only
    if len(merges) < vocab_size - 256:  # the whole train split became one token: nothing to train on
        sys.exit(f"error: the training text yields {256 + len(merges)} tokens only; pass a smaller --vocab_size")
    encode, decode, _ = build_tokenizer(merges)  # of vocab_size tokens
    text_id = {"merges": merges, "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    if resume and not sample_only and {k: state[k] for k in text_id} != text_id:
        sys.exit(f"error: {data_path} is not the text {ckpt_path} was trained on; pass that one as --data_path")

    model = GPTLanguageModel(vocab_size).to(torch_device)
    if state:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:  # keys or shapes that are not this model's
            sys.exit(f"error: {ckpt_path} holds the weights of another model than its hyperparameters describe")
    operations = 6 * sum(p.numel() for p in model.parameters()) * batch_size * block_size * max_iters
    if device == "auto" and torch_device.type == "cpu" and operations > 2e11 * 3600 and not sample_only:  # a CPU's hour
        sys.exit("error: no GPU, and these sizes take hours on a CPU; see --help for a CPU-sized run, or --device=cpu")
    if not sample_only:
        train_data = torch.tensor(encode(train_text), dtype=torch.long, device=torch_device)
        val_data = torch.tensor(encode(val_text), dtype=torch.long, device=torch_device)
        if min(len(train_data), len(val_data)) <= block_size:
            sys.exit(f"error: the text is too short: both splits need over block_size={block_size} tokens")
        print(f"{vocab_size} tokens: {len(val_text) / len(val_data):.2f} characters per token on the val text")
        print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {torch_device}")
        signum = train(model, train_data, val_data, text_id, state, val_chars=len(val_text))
        if dist.is_initialized():  # all together, leave the group: sampling needs no other process
            dist.barrier()  # no process tears its end down while another still talks
            gc.collect()  # the DDP module of train(), which holds the group, goes first
            dist.destroy_process_group()
        if signum:  # the same command, resumed, goes on
            launcher = ["torchrun", f"--nproc_per_node={WORLD_SIZE}"] if WORLD_SIZE > 1 else ["python"]
            command = launcher + [Path(__file__).name, *[a for a in argv if not a.startswith("--resume")]]
            print(f"continue with: {shlex.join(command + ['--resume=True'])}" if ckpt_path else "nothing was saved")
            sys.exit(128 + signum)
    if RANK:
        return  # process 0 samples for the run
    if torch_device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(torch_device) / 2**20:,.0f} MiB")

    model.eval()  # sample with training-only behaviour switched off
    context = torch.tensor([encode(prompt or "\n")], dtype=torch.long, device=torch_device)  # any text: bytes
    with autocast(torch_device):
        sample = decode(model.generate(context, max_new_tokens, temperature, top_k)[0].tolist())
    print(sample)
    if out_path:
        write_atomically(out_path, sample.encode("utf-8"))


# ---- the same in every script: command line, device, text, files ------------

def parse_args(argv):
    """Set the hyperparameters above from --name=value or --name value, each checked alone; return the names given."""
    with tokenize.open(__file__) as source:  # Python's own reading of this file: a '#' in a string is no comment
        comments = {token.line.split("=")[0].rstrip(): token.string.lstrip("# ")  # name = value  # comment
                    for token in tokenize.generate_tokens(source.readline) if token.type == tokenize.COMMENT}
    parser = argparse.ArgumentParser(prog=f"python {Path(__file__).name}", usage="%(prog)s [--name=value ...]",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False, argument_default=argparse.SUPPRESS)
    for name, kind in [(name, type(globals()[name])) for name in HYPERPARAMETERS]:  # a number takes any number
        parser.add_argument(f"--{name}", type={bool: str.lower, str: str}.get(kind, float), metavar=kind.__name__,
                            choices=["true", "false", "1", "0"] if kind is bool else None,
                            help=f"{comments.get(name, '')} (default: {globals()[name]})".replace("%", "%%"))
    given = vars(parser.parse_args(argv))
    for name, kind in [(name, type(globals()[name])) for name in HYPERPARAMETERS]:  # the file's values too
        value, low, whole = given.get(name, globals()[name]), LOWEST.get(name, -math.inf), type(LOWEST.get(name)) is int
        if kind in (int, float) and not (low <= value and abs(value) < (2**31 if whole else math.inf)  # no NaN or inf
                                         and (value % 1 == 0 or not whole)):  # whole: LOWEST's ints, 1 not 1.0
            where = f"--{name}={value:.15g}" if name in given else f"{name} = {value!r} in {Path(__file__).name}"
            sys.exit(f"error: {where}: {name} must be a {'whole number below 2**31' if whole else 'finite number'}"
                     + (f", at least {low}" if low > -math.inf else ""))
        globals()[name] = (str(value).lower() in ("true", "1") if kind is bool else
                           int(value) if whole or kind is int and value % 1 == 0 else value)
    outputs = {n: os.path.realpath(globals()[n]) for n in HYPERPARAMETERS  # each the file it is: through any link
               if n.endswith("_path") and n != "data_path" and globals()[n]}
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
    """'auto' picks cuda:0, then mps, then cpu; any other name must be a device present here ('cuda' is cuda:0)."""
    present = [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    present += ["mps"] * torch.backends.mps.is_available() + ["cpu"]
    chosen = present[0] if name == "auto" else "cuda:0" if name == "cuda" else name  # indexed, as set_device needs
    if chosen not in present:
        sys.exit(f"error: --device={name} is not here; use auto or one of {', '.join(present)}")
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
    """Write bytes to a new file beside path (mode x: never over another file), then rename it over path. A write
    that fails (a full disk) removes what it wrote and ends the run in one line, path as it was."""
    temporary, created = f"{path}.{os.getpid()}.tmp", False
    try:
        with open(temporary, "xb") as file:
            created = True
            file.write(data)
        os.replace(temporary, path)
    except BaseException as error:  # Ctrl-C too
        if created:
            os.remove(temporary)
        raise SystemExit(f"error: cannot write {path}: {error.strerror}") if isinstance(error, OSError) else error


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: the shell's status for it, and no traceback
        sys.exit(130)
    except BrokenPipeError:  # stdout closed early (| head): end quietly, nothing more flushed into the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # as a process ended by SIGPIPE
    except RuntimeError as error:  # out of memory, on the CPU or a GPU: one line that names the size
        if not (size := re.search(r"(?i)tried to allocate ([\d.]+ \w+)", str(error))):
            raise
        sys.exit(f"error: out of memory (tried to allocate {size[1]}); try smaller sizes")
