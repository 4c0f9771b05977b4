"""v9's GPT on byte-pair tokens: a byte-level BPE tokenizer learned from the training text.

New in this file, after v9.py: the model reads tokens, not characters. train_bpe
starts from the train split's UTF-8 bytes (256 tokens: any text, any prompt) and
merges the most frequent adjacent pair into a new token until there are vocab_size,
each merge a few tensor operations; the merges travel in the checkpoint. Step lines
give the val loss per token and in bits per character, to compare with v9.

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
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

# hyperparameters (each can be set on the command line: --name=value)
batch_size = 64  # independent sequences processed in parallel
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
out_path = ""  # file the sample is also written to ('' = printed only; v5 keeps the series' output.txt)
compile = True  # torch.compile the training step on CUDA (never on CPU or mps)
ckpt_path = str(Path(__file__).with_name("ckpt.pt"))  # the training state, saved at every evaluation ('' = none)
resume = False  # continue the run saved at ckpt_path, up to max_iters steps in all
sample_only = False  # load ckpt_path, sample, and exit without training
prompt = ""  # text the sample continues ('' = start from token 0)
temperature = 1.0  # divides the logits before sampling: below 1 safer, above 1 wilder
top_k = 0  # sample from the top_k likeliest tokens only (0 = from all)
grad_accum_steps = 1  # micro-batches each process splits its share of a batch into, to save memory
dist_timeout = 300  # seconds a process waits for the others before the run fails
vocab_size = 512  # the tokenizer's size: 256 bytes and vocab_size - 256 merges learned from the training text
HYPERPARAMETERS = [name for name, value in globals().items()  # the names above: --name=value sets them
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]


def check_hyperparameters():
    """A value no run can use stops the run here, with one line."""
    lowest = dict(batch_size=1, block_size=1, max_iters=0, eval_interval=1, warmup_iters=0, weight_decay=0,
                  beta2=0, n_embd=1, n_head=1, n_layer=1, max_new_tokens=0, top_k=0, seed=0,
                  grad_accum_steps=1, dist_timeout=1, vocab_size=256)
    for name, low in lowest.items():
        if globals()[name] < low:
            sys.exit(f"error: --{name} must be at least {low}, got {globals()[name]}")
    if learning_rate <= 0 or seed >= 2**64:
        sys.exit(f"error: --learning_rate must be above 0 and --seed below 2**64, got {learning_rate} and {seed}")
    if n_embd % n_head:  # every head gets the same share of the embedding
        sys.exit(f"error: --n_embd={n_embd} must be a multiple of --n_head={n_head}")
    if not 0 <= min_lr <= learning_rate or beta2 >= 1 or grad_clip <= 0:
        sys.exit(f"error: need 0 <= --min_lr <= --learning_rate, --beta2 < 1 and --grad_clip > 0;"
                 f" got {min_lr}, {beta2} and {grad_clip}")
    if not 0 <= dropout < 1:
        sys.exit(f"error: --dropout must be at least 0 and below 1, got {dropout}")
    if temperature <= 0:
        sys.exit(f"error: --temperature must be above 0, got {temperature}")


# ---- data -----------------------------------------------------------------

def merge(ids, pair, new):
    """ids (n,) with each occurrence of pair replaced by the token new, left to right: "aaaa" -> two."""
    match = (ids[:-1] == pair[0]) & (ids[1:] == pair[1])  # (n-1,) True where an occurrence starts
    if pair[0] == pair[1]:  # only then can occurrences overlap: in each run of matches keep the 1st, 3rd, ...
        pos = torch.arange(len(match))
        run_start = match.clone()
        run_start[1:] &= ~match[:-1]  # True at the first match of each run
        run_start = torch.where(run_start, pos, 0).cummax(0).values  # where the run of each position began
        match &= (pos - run_start) % 2 == 0
    first = torch.cat([match, match.new_zeros(1)])  # (n,) True at the first token of each occurrence
    return torch.where(first, new, ids).masked_select(~first.roll(1))  # new there, and the second dropped


def train_bpe(text, vocab_size):
    """The merges, in order, that byte-pair encoding learns on the UTF-8 bytes of text: merge i joins the
    most frequent adjacent pair (overlaps counted, a tie to the pair seen first) into token 256 + i."""
    if vocab_size < 256:
        raise ValueError(f"vocab_size must be at least 256, one token per byte, got {vocab_size}")
    ids = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)  # (n,) the raw bytes
    merges = []
    for new in range(256, vocab_size):
        if len(ids) < 2:  # no pair left to merge
            break
        pairs = ids[:-1] * new + ids[1:]  # (n-1,) each adjacent pair (a, b) as one number: every id < new
        counts = torch.bincount(pairs)  # all pairs counted at once, overlapping ones too ("aaa": (a, a) twice)
        is_top = counts.index_select(0, pairs) == counts.max()  # (n-1,) = counts[pairs] == max, but faster
        best = pairs[is_top.byte().argmax()].item()  # argmax: the first position holding a top pair
        merges.append(divmod(best, new))
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
    """Random windows of data: inputs x and targets y, y being x shifted by one character."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device, generator=generator)
    windows = data[ix + torch.arange(block_size + 1, device=data.device)]  # one gather: (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # (B, T) each


def eval_windows(data, every=1):
    """Every `every`-th non-overlapping block_size window of data, as inputs and targets (N, T)."""
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
    """Token and position embeddings, self-attention, then a linear map to next-character logits."""

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
        """Extend idx (B, T) by max_new_tokens characters, each sampled from the model."""
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -block_size:]  # the position table has block_size rows: crop the context
            logits, _ = self(idx_cond)  # (B, T, vocab_size)
            logits = logits[:, -1, :] / temperature  # the last position only: (B, vocab_size)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))  # the others can never be drawn
            probs = F.softmax(logits, dim=-1)  # (B, vocab_size)
            idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T + 1)
        return idx


# ---- processes ------------------------------------------------------------

RANK, WORLD_SIZE, CPU_GROUP = 0, 1, None  # this process's place in the run, set under torchrun by join_processes


def join_processes(target):
    """Under torchrun, join the run's process group; return the device this process trains on."""
    global RANK, WORLD_SIZE, CPU_GROUP
    if "RANK" not in os.environ:  # a plain `python v9.py`: one process, no group (torchrun sets RANK)
        return target
    target = pick_device(f"cuda:{os.environ['LOCAL_RANK']}") if target.type == "cuda" else target  # a GPU each
    timeout = datetime.timedelta(seconds=dist_timeout)
    dist.init_process_group("nccl" if target.type == "cuda" else "gloo", timeout=timeout)
    RANK, WORLD_SIZE = dist.get_rank(), dist.get_world_size()
    CPU_GROUP = dist.new_group(backend="gloo", timeout=timeout)  # to agree on a stop without waiting for the GPU
    if RANK:
        sys.stdout = open(os.devnull, "w")  # one voice: process 0 prints for the run
    return target


def stop_everywhere(stop):
    """Whether any process was asked to stop; if so, stop holds its signal in every process."""
    if WORLD_SIZE > 1:
        flag = torch.tensor([stop[0] if stop else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=CPU_GROUP)
        stop[:] = [int(flag)] if flag else []
    return bool(stop)


# ---- checkpoints ----------------------------------------------------------

ARCHITECTURE = ["block_size", "n_embd", "n_head", "n_layer", "vocab_size"]  # the shapes of the saved weights
# what each command decides for itself; every other hyperparameter comes from the checkpoint unless given
PER_COMMAND = ["device", "compile", "ckpt_path", "resume", "sample_only", "prompt", "temperature", "top_k",
               "max_new_tokens", "out_path", "grad_accum_steps", "dist_timeout"]


def open_checkpoint(given):
    """The run saved at ckpt_path for --resume or --sample_only, its hyperparameters restored where this
    command does not give them; None for a fresh run, which may not replace a file at ckpt_path."""
    if not (resume or sample_only):
        if ckpt_path and os.path.exists(ckpt_path):
            sys.exit(f"error: {ckpt_path} exists: go on with --resume=True, or pass another --ckpt_path")
        return None
    try:  # weights_only: tensors and plain containers only, so a file that would run code is refused
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = state["hyperparameters"]
        if "merges" not in state:  # v8's and v9's checkpoints: a model of characters
            raise ValueError
    except Exception as error:  # missing, truncated, unsafe, or not a checkpoint of this series
        sys.exit(f"error: {ckpt_path}: {'missing' if type(error) is FileNotFoundError else 'no checkpoint of v10.py'}")
    for name in ARCHITECTURE:
        if name in given and globals()[name] != saved[name]:
            sys.exit(f"error: {ckpt_path} holds a model with --{name}={saved[name]}; leave --{name} out")
    globals().update({n: v for n, v in saved.items() if n in HYPERPARAMETERS and n not in given | set(PER_COMMAND)})
    check_hyperparameters()  # the saved values with this command's
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


def train(model, train_data, val_data, text_id=None, state=None, val_chars=0):
    """max_iters AdamW steps on random batches, with the losses every eval_interval steps and at the end,
    each time saving the training state to ckpt_path; a saved state, if given, goes on where it stopped.
    Returns the signal (Ctrl-C, SIGTERM) that stopped the run early, or 0."""
    on_cuda = train_data.device.type == "cuda"
    optimizer = configure_optimizer(model)
    val_windows = eval_windows(val_data)
    # about as many training windows as validation windows, spread evenly over the training split
    train_windows = eval_windows(train_data, every=max(1, len(train_data) // len(val_data)))
    step_model = DDP(model, device_ids=[train_data.device.index] if on_cuda else None) if WORLD_SIZE > 1 else model
    step_model = torch.compile(step_model) if compile and on_cuda else step_model  # evaluation runs eagerly
    batches = torch.Generator(train_data.device).manual_seed(seed)  # the same global batches everywhere
    mine = slice(RANK * batch_size // WORLD_SIZE, (RANK + 1) * batch_size // WORLD_SIZE)  # this process's rows
    start_step = state["step"] if state else 0
    if state:  # the saved run goes on as if it never stopped: its optimizer moments, its random numbers
        # the saved moments, under this command's settings (decay, betas, fused: the device may differ)
        optimizer.load_state_dict({**state["optimizer"], "param_groups": optimizer.state_dict()["param_groups"]})
        if len(state["rng"].get("batches", [])) == len(batches.get_state()):  # none in v8's; or another device's
            batches.set_state(state["rng"]["batches"])
        if RANK == 0:  # process 0's dropout masks go on as saved; the others draw afresh
            torch.set_rng_state(state["rng"]["cpu"])
            if on_cuda and state["rng"]["cuda"] is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"])

    def save(step):
        if ckpt_path and RANK == 0:  # model is the bare module: its keys carry no "module." or "_orig_mod."
            rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if on_cuda else None,
                   "batches": batches.get_state()}
            checkpoint = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "rng": rng,
                        "hyperparameters": {n: globals()[n] for n in HYPERPARAMETERS}, **(text_id or {})}, checkpoint)
            write_atomically(ckpt_path, checkpoint.getvalue())

    stop = []  # the signal that asked for a stop: the loop finishes its step, saves and returns

    def note_stop(signum, frame):
        stop.append(signum)
        signal.signal(signum, previous[signum])  # a second one acts at once, as usual
        print("stopping after this step, to save; Ctrl-C again stops at once", flush=True)

    previous = {s: signal.signal(s, note_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    for step in range(start_step, max_iters + 1):
        if step % eval_interval == 0 or step == max_iters:
            losses = estimate_loss(model, {"train": train_windows, "val": val_windows})
            bits = losses["val"] * len(val_data) / (val_chars or len(val_data)) / math.log(2)  # val NLL / its chars
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                  f" ({bits:.3f} bits/char)", flush=True)
            if not math.isfinite(losses["train"] + losses["val"]):  # NaN or inf: training will not recover
                sys.exit(f"error: the loss is not finite at step {step}; try a smaller --learning_rate")
            save(step)
        if step < max_iters:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            xb, yb = get_batch(train_data, batches)  # the global batch: (batch_size, T) each
            micro_batches = list(zip(xb[mine].chunk(grad_accum_steps), yb[mine].chunk(grad_accum_steps)))
            optimizer.zero_grad(set_to_none=True)
            for i, (x, y) in enumerate(micro_batches, start=1):
                # DDP averages the gradients over the processes during backward: on the last micro-batch only
                with step_model.no_sync() if i < grad_accum_steps and WORLD_SIZE > 1 else contextlib.nullcontext():
                    with autocast(x.device):
                        _, loss = step_model(x, y)
                    (loss / grad_accum_steps).backward()  # the mean over the micro-batches
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if stop_everywhere(stop):  # keep this step's work, unless it broke the model, then stop
                if WORLD_SIZE > 1:
                    dist.all_reduce(loss)  # a loss that is not finite anywhere stops every process
                if not math.isfinite(loss.item()):
                    sys.exit(f"error: the loss is not finite at step {step + 1}; {ckpt_path} is kept as it was")
                save(step + 1)
                print(f"stopped after step {step + 1}")
                break
    for s, handler in previous.items():  # signals act as usual again
        signal.signal(s, handler)
    return stop[0] if stop_everywhere(stop) else 0  # a stop asked for in the last evaluation, too


def generate_sample(model, encode, decode, target):
    """Continue the prompt by max_new_tokens characters; print them, and keep them in out_path if given."""
    model.eval()  # sample with training-only behaviour switched off
    context = torch.tensor([encode(prompt or "\n")], dtype=torch.long, device=target)  # any text: bytes
    with autocast(target):
        sample = decode(model.generate(context, max_new_tokens, temperature, top_k)[0].tolist())
    print(sample)
    if out_path:
        write_atomically(out_path, sample.encode("utf-8"))


def main(argv):
    given = parse_args(argv)  # --name=value for the hyperparameters above, then check_hyperparameters()
    state = open_checkpoint(given)  # None for a fresh run
    target = join_processes(pick_device(device))  # under torchrun: this process's GPU, in the run's group
    if batch_size % (WORLD_SIZE * grad_accum_steps):  # every process and micro-batch takes an equal share
        sys.exit(f"error: --batch_size={batch_size} won't split into {WORLD_SIZE} x {grad_accum_steps} micro-batches")
    torch.manual_seed((seed + RANK) % 2**64)  # each process its own dropout masks; batches have their own generator
    if target.type == "cuda":
        torch.cuda.set_device(target)  # the GPU that compiled kernels are built and cached for
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for the matmuls left in float32
    text = "" if sample_only else load_text(data_path)  # sampling needs only the saved merges
    train_text, val_text = ("", "") if sample_only else split_data(text)  # by characters, before the tokenizer learns
    merges = state["merges"] if state else train_bpe(train_text, vocab_size)  # the train split's, only
    if len(merges) < vocab_size - 256:  # the whole train split became one token: nothing to train on
        sys.exit(f"error: the training text yields {256 + len(merges)} tokens only; pass a smaller --vocab_size")
    encode, decode, n_tokens = build_tokenizer(merges)
    text_id = {"merges": merges, "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    if resume and not sample_only and state["text_sha256"] != text_id["text_sha256"]:
        sys.exit(f"error: {data_path} is not the text {ckpt_path} was trained on; pass that one as --data_path")

    model = GPTLanguageModel(n_tokens)
    if state:
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, KeyError):  # keys or shapes that are not this model's
            sys.exit(f"error: {ckpt_path} holds the weights of another model than its hyperparameters describe")
    model.to(target)
    if sample_only:
        return generate_sample(model, encode, decode, target)
    train_data, val_data = (torch.tensor(encode(t), dtype=torch.long, device=target) for t in (train_text, val_text))
    if min(len(train_data), len(val_data)) <= block_size:
        sys.exit(f"error: the text is too short: both splits need over block_size={block_size} tokens")
    print(f"{n_tokens} tokens: {len(val_text) / len(val_data):.2f} characters per token on the val text")
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {target}")
    operations = 6 * sum(p.numel() for p in model.parameters()) * batch_size * block_size * max_iters
    if device == "auto" and target.type == "cpu" and operations > 2e11 * 3600:  # an hour of a fast CPU
        sys.exit("error: no GPU, and these sizes take hours on a CPU; see --help for a CPU-sized run, or --device=cpu")
    signum = train(model, train_data, val_data, text_id, state, val_chars=len(val_text))
    if dist.is_initialized():  # all together, leave the group: sampling needs no other process
        dist.barrier(group=CPU_GROUP)  # no process tears its end down while another still talks
        gc.collect()  # the DDP module of train(), which holds the group, goes first
        dist.destroy_process_group()
    if signum:  # the same command, with --resume=True, goes on from the checkpoint
        launcher = ["torchrun", f"--nproc_per_node={WORLD_SIZE}"] if WORLD_SIZE > 1 else ["python"]
        command = launcher + [Path(__file__).name, *[a for a in argv if not a.startswith("--resume")], "--resume=True"]
        print(f"continue with: {shlex.join(command)}" if ckpt_path else "nothing was saved")
        sys.exit(128 + signum)
    if RANK:
        return  # process 0 samples for the run
    if target.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(target) / 2**20:,.0f} MiB")
    generate_sample(model, encode, decode, target)


# ---- the same in every script: command line, device, text, files ------------

def parse_args(argv):
    """Set the hyperparameters above from --name=value or --name value; check them; return the names given."""
    comments = dict(re.findall(r"^(\w+) = .*?  # (.*)$", Path(__file__).read_text(encoding="utf-8"), re.M))
    parser = argparse.ArgumentParser(prog=f"python {Path(__file__).name}", usage="%(prog)s [--name=value ...]",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False, argument_default=argparse.SUPPRESS)
    for name, kind in [(n, type(globals()[n])) for n in HYPERPARAMETERS]:  # typed by its default
        parser.add_argument(f"--{name}", type={bool: boolean}.get(kind, kind), metavar=kind.__name__,
                            help=f"{comments[name]} (default: {globals()[name]})".replace("%", "%%"))
    given = vars(parser.parse_args(argv))
    if bad := [n for n, value in given.items() if isinstance(value, float) and not math.isfinite(value)]:
        parser.error(f"argument --{bad[0]}: must be a finite number, got {given[bad[0]]}")
    globals().update(given)
    check_hyperparameters()
    taken = {file_id(p) for p in [data_path, *Path(__file__).parent.glob("*.py")]}  # read, never written
    for name in [n for n in HYPERPARAMETERS if n.endswith("_path") and n != "data_path" and globals()[n]]:
        path = globals()[name]
        if file_id(path) in taken or os.path.isdir(path) or not os.access(Path(path).absolute().parent, os.W_OK):
            sys.exit(f"error: --{name}={path}: a directory, in a missing or read-only folder, or a file to keep")
        taken.add(file_id(path))
    return set(given)


def boolean(text):
    """argparse's type for a bool: True/False, true/false or 1/0."""
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError
    return text.lower() in ("true", "1")


def file_id(path):
    """The file itself, whatever path leads to it (a hard or symbolic link); its full path if it is new."""
    return (os.stat(path).st_dev, os.stat(path).st_ino) if os.path.exists(path) else os.path.realpath(path)


def pick_device(name):
    """'auto' picks cuda, then mps, then cpu; any other name must be a device present here."""
    present = ["cuda"] * torch.cuda.is_available() + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    present += ["mps"] * torch.backends.mps.is_available() + ["cpu"]
    name = present[0] if name == "auto" else name
    if name not in present:
        sys.exit(f"error: --device={name} is not here; use auto or one of {', '.join(present)}")
    return torch.device(name)


def load_text(path):
    """The training text, or a one-line error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:  # missing, a directory, unreadable, not UTF-8
        sys.exit(f"error: cannot read {path}: {getattr(error, 'strerror', None) or 'not UTF-8 text'}")
    if not text or "\0" in text:
        sys.exit(f"error: {path} is {'binary' if text else 'empty'}")
    return text


def write_atomically(path, data):
    """Write bytes into path + ".tmp", then rename it over path: a crash leaves the old file or the new."""
    Path(path + ".tmp").write_bytes(data)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: the shell's status for it, and no traceback
        sys.exit(130)
    except RuntimeError as error:  # out of memory, on the CPU or a GPU: one line that names the size
        if not (size := re.search(r"(?i)tried to allocate ([\d.]+ \w+)", str(error))):
            raise
        sys.exit(f"error: out of memory (tried to allocate {size[1]}); try smaller sizes")
