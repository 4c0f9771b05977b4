"""v8's GPT on many processes: one run, whatever the number of GPUs (DistributedDataParallel).

New in this file, after v8.py: launched by torchrun, PyTorch's own launcher, every
process joins one process group (NCCL on CUDA, gloo on the CPU) and trains the same
model on its own GPU, cuda:LOCAL_RANK. batch_size stays the number of sequences in
one optimizer step, summed over all processes: each process draws the same global
batch from a generator of its own, seeded alike everywhere, takes its share of the
rows, optionally in grad_accum_steps micro-batches, and DistributedDataParallel
averages the gradients on the last one. So any number of processes, with any
grad_accum_steps, trains on the batches of the one-process run. The evaluation is
shared out and summed; process 0 alone prints, saves and samples; all processes stop
at the same step on Ctrl-C or SIGTERM; a process that dies ends the run.

    python v9.py                                                 # one process, like v8
    torchrun --standalone --nproc_per_node=8 v9.py               # eight GPUs of one machine
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_endpoint=HOST:29500 v9.py  # and node 1

Its figures on several GPUs are pending (README, "Many GPUs").
"""

import atexit
import contextlib
import datetime
import gc
import hashlib
import math
import operator
import os
import re
import shlex
import signal
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

# hyperparameters (each can be overridden on the command line: --name=value)
batch_size = 64  # independent sequences processed in parallel
block_size = 256  # maximum context length for predictions, in characters
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
max_new_tokens = 2000  # characters sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("input.txt"))  # training text: any UTF-8 file
seed = 1337  # random seed: the same seed gives the same run
out_path = str(Path(__file__).with_name("output.txt"))  # file the sample is also written to ('' = printed only)
compile = True  # torch.compile the training step on CUDA (never on CPU or mps)
ckpt_path = str(Path(__file__).with_name("ckpt.pt"))  # the training state, saved at every evaluation ('' = none)
resume = False  # continue the run saved at ckpt_path, up to max_iters steps in all
sample_only = False  # load ckpt_path, sample, and exit without training
prompt = ""  # text the sample continues ('' = start from token 0)
temperature = 1.0  # divides the logits before sampling: below 1 safer, above 1 wilder
top_k = 0  # sample from the top_k likeliest characters only (0 = from all)
grad_accum_steps = 1  # micro-batches each process splits its share of a batch into, to save memory
dist_timeout = 300  # seconds a process waits for the others before the run fails
# the names above: the ones --name=value may set
HYPERPARAMETERS = [name for name, value in globals().items()
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]


# ---- data -----------------------------------------------------------------

def build_tokenizer(text):
    """Character-level tokenizer: each distinct character of the text is one token."""
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = dict(enumerate(chars))

    def encode(s):
        return [stoi[c] for c in s]  # string -> list of integers

    def decode(ids):
        return "".join(itos[i] for i in ids)  # list of integers -> string

    return encode, decode, len(chars)


def split_data(data):
    """First 90% for training, the rest for validation; each must hold a full window."""
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    if min(len(train_data), len(val_data)) <= block_size:
        sys.exit(f"error: the text is too short for block_size={block_size}: both splits need"
                 f" more than {block_size} characters (train has {len(train_data)},"
                 f" val has {len(val_data)})")
    return train_data, val_data


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

def cuda_graph(forward):
    """Record the CUDA kernels of one call of forward(); return a function that replays them.

    A replay reads and writes the memory the recorded call did: update the inputs in place,
    and read the output, the same tensor each time, before the next replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up calls on a side stream, as recording requires
        for _ in range(3):
            forward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = forward()

    def replay():
        graph.replay()
        return out

    return replay


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
            loss = None
        else:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, vocab_size) vs (B*T,)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=0):
        """Extend idx (B, T) by max_new_tokens characters, each sampled from the model's
        probabilities at the given temperature, from the top_k likeliest only if top_k > 0.

        Every forward pass reads a window of exactly block_size positions, so that on CUDA it is
        recorded once and replayed. Until the text fills the window, its tail is padding that
        attention, being causal, hides from the real positions: their logits are v5's."""
        B, T = idx.shape
        out = torch.zeros((B, max(T + max_new_tokens, block_size)), dtype=torch.long, device=idx.device)
        out[:, :T] = idx
        window = out[:, :block_size].clone()  # the forward pass's input, updated in place

        def forward():
            return self(window)[0]  # (B, block_size) -> (B, block_size, vocab_size)

        logits_of = cuda_graph(forward) if idx.is_cuda else forward
        for t in range(T, T + max_new_tokens):
            start = max(0, t - block_size)  # the window holds positions start .. start + block_size - 1
            window.copy_(out[:, start:start + block_size])
            logits = logits_of()[:, t - 1 - start, :] / temperature  # at position t - 1: (B, vocab_size)
            if top_k:
                kth_largest = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth_largest, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            out[:, t:t + 1] = torch.multinomial(probs, num_samples=1)  # (B, 1)
        return out[:, :T + max_new_tokens]


# ---- processes ------------------------------------------------------------

# this process's place in the run, set by join_processes under torchrun: its rank among world_size
# processes, and a gloo group for small agreements on the CPU that wait for no GPU work
RANK, WORLD_SIZE, CPU_GROUP = 0, 1, None


def join_processes(target):
    """Under torchrun, join the run's process group; return the device this process trains on."""
    global RANK, WORLD_SIZE, CPU_GROUP
    if "RANK" not in os.environ:  # a plain `python v9.py`: one process, no group (torchrun sets RANK)
        return target
    if target.type == "cuda":
        target = pick_device(f"cuda:{os.environ['LOCAL_RANK']}")  # one GPU for each process
    timeout = datetime.timedelta(seconds=dist_timeout)
    try:
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo", timeout=timeout)
    except (RuntimeError, ValueError) as error:  # no rendezvous: a bad address, a port taken, a timeout
        sys.exit(f"error: cannot join the run's processes: {str(error).splitlines()[0]}")
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())  # however it ends
    RANK, WORLD_SIZE = dist.get_rank(), dist.get_world_size()
    CPU_GROUP = dist.new_group(backend="gloo", timeout=timeout) if target.type == "cuda" else dist.group.WORLD
    if RANK:
        sys.stdout = open(os.devnull, "w")  # one voice: process 0 prints for the run
    return target


def leave_processes():
    """All together, leave the process group: no process tears its end down while another still talks.
    Nothing may hold on to the group after (DDP, CPU_GROUP): it must go now, not as Python exits."""
    global CPU_GROUP
    if dist.is_initialized():
        dist.barrier(group=CPU_GROUP)
        CPU_GROUP = None
        gc.collect()  # a DDP module the caller dropped, with the group its gradient sums hold
        dist.destroy_process_group()


def all_processes_agree(signum):
    """The stop signal any process received, made known to all, so that all stop after one step."""
    if WORLD_SIZE == 1:
        return signum
    flag = torch.tensor([signum])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=CPU_GROUP)
    return int(flag)


# ---- checkpoints ----------------------------------------------------------

CHECKPOINT_KEYS = {"model", "optimizer", "scaler", "step", "best_val_loss", "rng", "hyperparameters",
                   "vocab", "text_sha256"}
ARCHITECTURE = ["block_size", "n_embd", "n_head", "n_layer"]  # the saved weights' shapes: fixed by a checkpoint
# what each command decides for itself; every other hyperparameter comes from the checkpoint unless given
SESSION = ["device", "data_path", "seed", "out_path", "compile", "ckpt_path", "resume", "sample_only",
           "prompt", "temperature", "top_k", "max_new_tokens", "grad_accum_steps", "dist_timeout"]
# what the command that resumes a stopped run repeats: where the run and its text are, and how it ran
RESUME_WITH = ["ckpt_path", "data_path", "device", "compile", "grad_accum_steps"]


def save_checkpoint(state, path):
    """Write state to path atomically: into path + ".tmp", flushed to the disk, then renamed over
    path. A crash or a kill at any moment leaves the old checkpoint or the new one, whole."""
    temporary = path + ".tmp"
    try:
        with open(temporary, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:  # an error or a signal mid-write: leave no partial file behind
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, OSError):
            sys.exit(f"error: cannot save {path}: {error.strerror or error}; the previous checkpoint is intact")
        raise
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    os.fsync(directory)  # the rename, too, reaches the disk
    os.close(directory)


def load_checkpoint(path):
    """The state saved at path, or a one-line error. weights_only=True unpickles tensors and plain
    containers only: a pickle that would run code is refused, never executed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickles before refusing them
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        sys.exit(f"error: no checkpoint at {path}; train one first, or pass --ckpt_path")
    except Exception as error:  # truncated, not a checkpoint, or unsafe: torch raises many kinds
        sys.exit(f"error: {path} is not a checkpoint that can be loaded safely ({type(error).__name__})")
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
        sys.exit(f"error: {path} is not a checkpoint of this series")
    return state


def open_checkpoint(given):
    """The saved run for --resume or --sample_only, its hyperparameters restored where the command line
    does not set them; None for a fresh run, which may not overwrite a file at ckpt_path."""
    if not (resume or sample_only):
        if ckpt_path and os.path.exists(ckpt_path):
            sys.exit(f"error: {ckpt_path} already exists: continue that run with --resume=True, keep it by"
                     " passing another --ckpt_path, or delete it to start afresh")
        return None
    if resume and sample_only:
        sys.exit("error: --resume=True and --sample_only=True: choose one")
    if not ckpt_path:
        sys.exit("error: --resume and --sample_only read --ckpt_path, which is empty")
    state = load_checkpoint(ckpt_path)
    saved = state["hyperparameters"]
    for name in ARCHITECTURE:
        if name in given and globals()[name] != saved[name]:
            sys.exit(f"error: --{name}={globals()[name]} contradicts {ckpt_path}, saved with"
                     f" {name}={saved[name]}; leave it out")
    for name, value in saved.items():
        if name in HYPERPARAMETERS and name not in SESSION and name not in given:
            globals()[name] = value
    for name, rule in RULES.items():  # the saved values and the given ones, together
        check_rule(name, rule)
    if resume and max_iters < state["step"]:
        sys.exit(f"error: {ckpt_path} is at step {state['step']}: --max_iters={max_iters} would go back")
    return state


class StopSignals:
    """While active, a first Ctrl-C (SIGINT) or SIGTERM only notes that a stop was asked for, so that
    the training loop can finish its step and save; a second one acts at once, as usual. A first one
    that comes too late for the loop to see is raised again at exit."""

    def __enter__(self):
        self.signum = 0
        self.previous = {s: signal.signal(s, self.note) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def note(self, signum, frame):
        self.signum = signum
        self.restore()
        if RANK == 0:
            print("stopping after this step, to save; Ctrl-C again stops at once", file=sys.stderr, flush=True)

    def restore(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def __exit__(self, *exception):
        self.restore()
        if self.signum and exception[0] is None:
            signal.raise_signal(self.signum)


# ---- training -------------------------------------------------------------

def autocast(device):
    """bf16 autocast on CUDA (fp16 where the GPU has no bf16); float32 elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    # no cache of weights cast to bf16: a recorded CUDA graph must not read a cache that is freed
    return torch.autocast("cuda", dtype=dtype, cache_enabled=False)


@torch.no_grad()
def estimate_loss(model, splits):
    """Mean loss over the given windows of each split, with the model in eval mode; each process
    measures its share of the windows, and the sums are added up over the processes."""
    model.eval()
    out = {}
    for split, (x, y) in splits.items():
        count = len(x)
        x, y = x[RANK::WORLD_SIZE], y[RANK::WORLD_SIZE]  # this process's share
        total = torch.zeros((), device=x.device)  # stays on the device: no sync per batch
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


def train_step(model, optimizer, scaler, xb, yb):
    """One optimizer update on this process's rows of a batch, in grad_accum_steps micro-batches;
    returns the last one's loss before the update."""
    optimizer.zero_grad(set_to_none=True)
    micro_batches = list(zip(xb.chunk(grad_accum_steps), yb.chunk(grad_accum_steps)))
    for i, (x, y) in enumerate(micro_batches):
        # DDP averages the gradients over the processes during backward: on the last micro-batch only
        syncing = WORLD_SIZE == 1 or i == len(micro_batches) - 1
        with contextlib.nullcontext() if syncing else model.no_sync():
            with autocast(x.device):
                _, loss = model(x, y)
            # fp16 only: the loss is scaled up so small gradients survive; / grad_accum_steps: a mean
            scaler.scale(loss / grad_accum_steps).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss


def train(model, train_data, val_data, text_id, state=None):
    """max_iters AdamW steps on random batches, reporting losses every eval_interval steps and saving
    the training state to ckpt_path each time; a saved state, if given, goes on where it stopped."""
    on_cuda = train_data.device.type == "cuda"
    optimizer = configure_optimizer(model)
    scaler = torch.amp.GradScaler(enabled=on_cuda and not torch.cuda.is_bf16_supported(including_emulation=False))
    if WORLD_SIZE > 1:  # DDP averages the gradients over the processes; model stays the bare module
        step_model = DDP(model, device_ids=[train_data.device.index] if on_cuda else None)
    else:
        step_model = model
    # only the training step is compiled: evaluation and sampling run eagerly, with other shapes
    step_model = torch.compile(step_model) if compile and on_cuda else step_model
    batches = torch.Generator(train_data.device).manual_seed(seed)  # the same global batches everywhere
    mine = slice(RANK * batch_size // WORLD_SIZE, (RANK + 1) * batch_size // WORLD_SIZE)  # this process's rows
    val_windows = eval_windows(val_data)
    # about as many training windows as validation windows, spread evenly over the training split
    train_windows = eval_windows(train_data, every=max(1, len(train_data) // len(val_data)))
    start_step, best_val_loss = 0, math.inf
    if state:  # the saved run goes on as if it never stopped: its optimizer, its random numbers
        for saved, group in zip(state["optimizer"]["param_groups"], optimizer.param_groups):
            saved.update({k: group[k] for k in ("weight_decay", "betas", "fused", "foreach")})  # this command's
        optimizer.load_state_dict(state["optimizer"])  # the saved moments, under this command's settings
        if state["scaler"]:  # empty where no loss scaling was needed (bf16, CPU)
            scaler.load_state_dict(state["scaler"])
        start_step, best_val_loss = state["step"], state["best_val_loss"]
        saved_batches = state["rng"].get("batches")  # none in v8's checkpoints; none usable from another device
        if saved_batches is not None and len(saved_batches) == len(batches.get_state()):
            batches.set_state(saved_batches)
        if RANK == 0:  # process 0's dropout masks go on as saved; the others draw afresh
            torch.set_rng_state(state["rng"]["cpu"])
            if on_cuda and state["rng"]["cuda"] is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"], train_data.device)
    timer = StepTimer(start_step)  # time per step and time left, for the lines below
    save_seconds = []  # what keeping the run costs

    def save(step):
        if ckpt_path and RANK == 0:  # model is the bare module: its keys carry no "module." or "_orig_mod."
            rng = {"cpu": torch.get_rng_state(), "batches": batches.get_state(),
                   "cuda": torch.cuda.get_rng_state(train_data.device) if on_cuda else None}
            start = time.perf_counter()
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scaler": scaler.state_dict(), "step": step, "best_val_loss": best_val_loss,
                             "rng": rng, "hyperparameters": {n: globals()[n] for n in HYPERPARAMETERS},
                             **text_id}, ckpt_path)
            save_seconds.append(time.perf_counter() - start)

    def report(step):
        nonlocal best_val_loss
        losses = estimate_loss(model, {"train": train_windows, "val": val_windows})
        print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
              f" ({losses['val'] / math.log(2):.3f} bits/char)" + timer.lap(step), flush=True)
        stop_if_diverged(step, losses)
        best_val_loss = min(best_val_loss, losses["val"])
        save(step)

    with StopSignals() as stop:
        for step in range(start_step, max_iters):
            if step % eval_interval == 0 or step == start_step:  # a resumed run first shows where it is
                report(step)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            xb, yb = get_batch(train_data, batches)  # the global batch: (batch_size, T) each
            loss = train_step(step_model, optimizer, scaler, xb[mine], yb[mine])
            timer.tick(step + 1)
            signum = all_processes_agree(stop.signum)
            if signum:  # Ctrl-C or SIGTERM: keep this step's work, then stop
                if WORLD_SIZE > 1:
                    dist.all_reduce(loss)  # a loss that is not finite anywhere stops every process
                stop_if_diverged(step + 1, {"train": loss.item()})
                save(step + 1)
                launcher = ["torchrun", f"--nproc_per_node={WORLD_SIZE}"] if WORLD_SIZE > 1 else ["python"]
                command = shlex.join(launcher + [Path(__file__).name, "--resume=True"]
                                     + [f"--{n}={globals()[n]}" for n in RESUME_WITH])
                if RANK == 0:
                    print(f"stopped after step {step + 1}; " + (f"continue with: {command}" if ckpt_path
                          else "nothing saved, since --ckpt_path is empty"), file=sys.stderr)
                break
        else:  # no stop asked for during training
            report(max_iters)
            signum = all_processes_agree(stop.signum)  # one that came during the last evaluation: all stop
        if signum:
            step_model = None  # DDP lets go of the process group, which leave_processes ends
            leave_processes()
            sys.exit(128 + signum)
    if save_seconds:
        print(f"checkpoint {ckpt_path}: {os.path.getsize(ckpt_path) / 2**20:.1f} MiB, saved {len(save_seconds)}"
              f" times in {sum(save_seconds):.2f} s, the last in {save_seconds[-1]:.2f} s")


def main(argv):
    given = apply_overrides(argv)
    target = join_processes(pick_device(device))  # under torchrun: this process's GPU, in the run's group
    if target.type == "cuda":
        torch.cuda.set_device(target)  # where streams, recorded graphs and bf16 support are looked up
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for the matmuls left in float32
    state = open_checkpoint(given)  # None for a fresh run
    if batch_size % (WORLD_SIZE * grad_accum_steps):  # every process and micro-batch takes an equal share
        sys.exit(f"error: --batch_size={batch_size} must be a multiple of {WORLD_SIZE} processes"
                 f" x {grad_accum_steps} micro-batches = {WORLD_SIZE * grad_accum_steps}")
    torch.manual_seed((seed + RANK) % 2**64)  # each process its own dropout masks; batches have their own generator
    if sample_only:  # the vocabulary travels with the checkpoint: no training text needed
        vocab = state["vocab"]
    else:
        text = load_text(data_path)
        vocab = "".join(sorted(set(text)))
        text_id = {"vocab": vocab, "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        if state and {k: state[k] for k in text_id} != text_id:
            sys.exit(f"error: {data_path} is not the text {ckpt_path} was trained on"
                     f" ({'other characters' if state['vocab'] != vocab else 'same characters, other text'});"
                     f" it was trained on --data_path={state['hyperparameters']['data_path']}")
    encode, decode, vocab_size = build_tokenizer(vocab)
    unknown = sorted(set(prompt) - set(vocab))
    if unknown:
        sys.exit(f"error: --prompt has characters the model never saw: {''.join(unknown)!r}")

    model = GPTLanguageModel(vocab_size)
    if state:
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, TypeError):  # keys or shapes that are not this model's
            sys.exit(f"error: {ckpt_path} holds weights of another model than its hyperparameters describe")
    model.to(target)
    if sample_only:
        print(f"{ckpt_path}: step {state['step']}, best val loss {state['best_val_loss']:.4f};"
              f" sampling on {target}")
    else:
        train_data, val_data = split_data(torch.tensor(encode(text), dtype=torch.long))
        train_data, val_data = train_data.to(target), val_data.to(target)  # moved to the device once
        print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {target}"
              + (f" (process 0 of {WORLD_SIZE})" if WORLD_SIZE > 1 else ""))
        refuse_hours_on_cpu(model, target)
        try:
            train(model, train_data, val_data, text_id, state)
            leave_processes()  # sampling needs no other process
        except RuntimeError as error:  # with several processes: most likely another one died or hung
            if WORLD_SIZE == 1 or isinstance(error, torch.OutOfMemoryError):
                raise
            sys.exit(f"error: process {RANK} of {WORLD_SIZE} stopped: {str(error).splitlines()[0]}")
        if target.type == "cuda":
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated(target) / 2**20:,.0f} MiB")

    if RANK:
        return  # process 0 samples for the run
    model.eval()  # sample with training-only behaviour switched off
    context = torch.tensor([encode(prompt) or [0]], dtype=torch.long, device=target)  # token 0 if no prompt
    with autocast(target):
        sample = decode(model.generate(context, max_new_tokens, temperature, top_k)[0].tolist())
    if out_path:
        Path(out_path).write_text(sample, encoding="utf-8")
        print(f"sample, also written to {out_path}:")
    print(sample)


# What each number may be: "OP VALUE", joined by " and "; VALUE is a number or another name.
RULES = {
    "batch_size": ">= 1",
    "block_size": ">= 1",
    "max_iters": ">= 0",
    "eval_interval": ">= 1",
    "learning_rate": "> 0",
    "min_lr": ">= 0 and <= learning_rate",
    "warmup_iters": ">= 0",
    "weight_decay": ">= 0",
    "beta2": ">= 0 and < 1",
    "grad_clip": "> 0",
    "n_embd": ">= 1 and multiple of n_head",
    "n_head": ">= 1",
    "n_layer": ">= 1",
    "dropout": ">= 0 and < 1",
    "max_new_tokens": ">= 0",
    "temperature": "> 0",
    "top_k": ">= 0",
    "grad_accum_steps": ">= 1",
    "dist_timeout": "> 0",
    "seed": ">= 0 and < 18446744073709551616",
}
# a CPU-sized run to suggest when device=auto finds no GPU and these sizes would take hours
CPU_ARGS = "--batch_size=32 --block_size=64 --n_embd=128 --n_head=4 --n_layer=4 --max_iters=2000 --eval_interval=500"


# ---- command line and input checks (the same in every file) ----------------

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
             "multiple of": lambda value, base: value % base == 0}
KINDS = {int: "an integer", float: "a finite number", bool: "True or False", str: "a string"}


def apply_overrides(argv):
    """Set hyperparameters from --name=value arguments, cast to the type of their default, and check
    them all; return the names that were given."""
    if "--help" in argv or "-h" in argv:
        print_help()
        sys.exit(0)
    given = set()
    for arg in argv:
        name, has_value, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in HYPERPARAMETERS:
            sys.exit(f"error: unknown argument {arg!r}; python {Path(__file__).name} --help lists the names")
        if not has_value:
            sys.exit(f"error: {arg} has no value: the form is --{name}=value")
        kind = type(globals()[name])
        try:
            globals()[name] = {"True": True, "False": False}[value] if kind is bool else kind(value)
        except (KeyError, ValueError):
            sys.exit(f"error: --{name} must be {KINDS[kind]}, got {value!r}")
        given.add(name)
    for name, rule in RULES.items():
        check_rule(name, rule)
    check_output_paths()
    return given


def check_rule(name, rule):
    """Exit with a one-line error unless the hyperparameter is finite and meets every part of its rule."""
    value = globals()[name]
    for part in rule.split(" and "):
        op, bound = part.rsplit(" ", 1)
        limit = globals()[bound] if bound in HYPERPARAMETERS else int(bound) if bound.isdigit() else float(bound)
        if (isinstance(value, float) and not math.isfinite(value)) or not OPERATORS[op](value, limit):
            shown = f"{bound} ({limit})" if bound in HYPERPARAMETERS else bound
            sys.exit(f"error: --{name} must be {KINDS[type(value)]} "
                     + rule.replace(bound, shown) + f", got {value}")


def check_output_paths():
    """Every *_path but data_path is written: it must be a file in an existing, writable directory,
    and neither the training text nor another output."""
    outputs = [name for name in HYPERPARAMETERS if name.endswith("_path") and name != "data_path"]
    seen = {os.path.realpath(data_path): "data_path"}
    for name in outputs:
        path = globals()[name]
        if not path:
            continue
        real = os.path.realpath(path)
        if real in seen:
            sys.exit(f"error: --{name}={path} is also --{seen[real]}; writing it would destroy that file")
        seen[real] = name
        if os.path.isdir(path):
            sys.exit(f"error: --{name}={path} is a directory; give a file name")
        directory = os.path.dirname(real)
        if not os.path.isdir(directory):
            sys.exit(f"error: --{name}={path}: no directory {directory} to write into")
        if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            sys.exit(f"error: --{name}={path} cannot be written here")


def print_help():
    """Every hyperparameter with its default and its comment, read from the top of this file."""
    comments = dict(re.findall(r"^(\w+) = .*?  # (.*)$", Path(__file__).read_text(encoding="utf-8"), re.M))
    print(f"usage: python {Path(__file__).name} [--name=value ...]\n\n{__doc__.splitlines()[0]}\n")
    for name in HYPERPARAMETERS:
        rule = f" [{RULES[name]}]" if name in RULES else ""
        print(f"  --{name}={globals()[name]}\n      {comments.get(name, '')}{rule}")


def pick_device(name):
    """'auto' picks cuda, then mps, then cpu; any other name must be a device present here."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        target = torch.device(name)
    except RuntimeError:
        sys.exit(f"error: --device={name} is not a device name; use auto, cpu, cuda, cuda:N or mps")
    count = {"cpu": 1, "cuda": torch.cuda.device_count(), "mps": int(torch.backends.mps.is_available())}
    if (target.index or 0) >= count.get(target.type, 0):
        sys.exit(f"error: --device={name} is not available here; use auto, cpu, cuda, cuda:N or mps")
    return target


def refuse_hours_on_cpu(model, target):
    """With device=auto and no GPU, stop before a run that would take over an hour on this CPU.

    The estimate times one forward pass of one sequence, without drawing random numbers,
    and counts a training step as three such passes (forward and backward) per sequence."""
    if device != "auto" or target.type != "cpu":
        return
    was_training = model.training
    model.eval()
    with torch.no_grad():
        window = torch.zeros((1, block_size), dtype=torch.long)
        model(window)  # the first pass allocates; time the second
        start = time.perf_counter()
        model(window)
        seconds = 3 * batch_size * (time.perf_counter() - start) * max_iters
    model.train(was_training)
    if seconds > 3600:
        suggestion = f"python {Path(__file__).name} {CPU_ARGS}" if CPU_ARGS else "smaller sizes"
        sys.exit(f"error: no GPU found, and these sizes need at least {duration(seconds)} of training on"
                 f" this CPU (estimated from one forward pass); try {suggestion}, or pass --device=cpu to run anyway")


def load_text(path):
    """Read the training text; anything unusable ends the run with a one-line error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        sys.exit(f"error: no data file at {path}")
    except UnicodeDecodeError:
        sys.exit(f"error: {path} is not UTF-8 text")
    except OSError as error:
        sys.exit(f"error: cannot read {path}: {error.strerror}")
    if not text:
        sys.exit(f"error: {path} is empty")
    return text


def duration(seconds):
    """A time span as a person reads it: '42 s', '12 min' or '3.5 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class StepTimer:
    """Time per training step, evaluations included, and the time left to max_iters."""

    def __init__(self, first_step=0):
        self.first_step = first_step
        self.start = self.last_line = time.time()

    def lap(self, step):
        """' | 12.3 ms/step, 4 min left' for a line printed after step steps ('' before any)."""
        self.last_line = time.time()
        if step == self.first_step:
            return ""
        per_step = (self.last_line - self.start) / (step - self.first_step)
        return f" | {per_step * 1000:.1f} ms/step, {duration(per_step * (max_iters - step))} left"

    def tick(self, step):
        """After each training step: a progress line whenever 10 s have passed without one."""
        if time.time() - self.last_line >= 10:
            print(f"... step {step}/{max_iters}" + self.lap(step), flush=True)


def stop_if_diverged(step, losses):
    """A loss that is NaN or infinite will not come back: end the run with a one-line error."""
    if not all(math.isfinite(loss) for loss in losses.values()):
        shown = ", ".join(f"{split} {loss}" for split, loss in losses.items())
        sys.exit(f"error: training diverged: the loss is not finite at step {step} ({shown});"
                 " try a smaller --learning_rate")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: stop without a traceback
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the output went to a program that stopped reading it (head, say)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(1)
    except torch.OutOfMemoryError:
        sys.exit("error: out of GPU memory at these sizes; try a smaller --batch_size or --block_size")
