"""Run a training script with its output timestamped, and read the figures out of a run.

A run is kept as a record (a JSON-serialisable dict): the command, the device, the
PyTorch version, the date, the git commit, and every line the script printed with
the seconds since the process started. benchmark.py makes records;
training_logs.py writes them into training_logs.md; plot_losses.py reads that file
back. Only the standard library is used here, so that the parsing is testable
anywhere.
"""

import datetime
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP_LINE = re.compile(r"^step (\d+): train loss (\d+\.\d+), val loss (\d+\.\d+)")
PARAMETERS_LINE = re.compile(r"^([\d,]+) parameters, training on (\S+)")
CLASSIC = "tinyshakespeare (classic)"


def git_commit():
    """The checkout's commit, marked -dirty when the working tree differs from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def device_name(device):
    """The name a person knows the device by: the GPU's model for CUDA."""
    if device.startswith("cuda"):
        import torch
        return torch.cuda.get_device_name(torch.device(device))
    return device


def torch_version():
    import torch
    return torch.__version__


def run(script, args, commit=None):
    """Run `python script args...`, echoing and timestamping each line; return the record."""
    command = [sys.executable, "-u", str(script), *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in process.stdout:
        lines.append([round(time.perf_counter() - start, 3), line.rstrip("\n")])
        print(line, end="", flush=True)
    returncode = process.wait()
    wall_time = time.perf_counter() - start
    device = next((m.group(2) for _, text in lines if (m := PARAMETERS_LINE.match(text))), "unknown")
    return {
        "script": Path(script).name,
        "args": list(args),
        "command": shlex.join(["python", Path(script).name, *args]),
        "returncode": returncode,
        "device": device_name(device) if returncode == 0 else device,
        "torch": torch_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or git_commit(),
        "wall_time": round(wall_time, 2),
        "lines": lines,
    }


def data_label(args):
    """'input.txt' for the project's own text, the classic corpus by name, else the path given."""
    path = next((a.split("=", 1)[1] for a in args if a.startswith("--data_path=")), None)
    if path is None:
        return "input.txt"
    return CLASSIC if Path(path).name == "tinyshakespeare.txt" else path


def steps(lines):
    """(seconds, step, train loss, val loss) for every step line of a run's output."""
    return [(t, int(m.group(1)), float(m.group(2)), float(m.group(3)))
            for t, text in lines if (m := STEP_LINE.match(text))]


def parameters(lines):
    return next(int(m.group(1).replace(",", "")) for _, text in lines if (m := PARAMETERS_LINE.match(text)))


def tokens_per_step(script, args):
    """batch_size * block_size as the script itself resolves them from its defaults and args."""
    spec = importlib.util.spec_from_file_location("benchmarked_script", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.apply_overrides(args)
    return module.batch_size * module.block_size


def summary(record):
    """The figures of the training-log summary table for one run."""
    points = steps(record["lines"])
    _, last_step, final_train, final_val = points[-1]
    return {
        "version": record["script"].removesuffix(".py"),
        "data": data_label(record["args"]),
        "device": record["device"],
        "parameters": parameters(record["lines"]),
        "steps": last_step,
        "final train loss": final_train,
        "final val loss": final_val,
        "best val loss": min(val for *_, val in points),
        "wall time (s)": record["wall_time"],
    }


def seconds_to(points, target):
    """Seconds from process start to the first step line with val loss <= target, or None."""
    return next((t for t, _, _, val in points if val <= target), None)


def speed(record, targets=(1.50, 1.47)):
    """The figures of the Speed table for one run."""
    points = steps(record["lines"])
    best_time, _, _, best_val = min(points, key=lambda p: (p[3], p[0]))
    # throughput from the second report on, so that start-up and compilation are left out
    (t0, s0, _, _), (t1, s1, _, _) = points[min(1, len(points) - 1)], points[-1]
    tokens = (s1 - s0) * tokens_per_step(record["script"], record["args"])
    row = {"script": record["script"], "data": data_label(record["args"]), "device": record["device"]}
    for target in targets:
        row[f"seconds to val ≤ {target:.2f}"] = seconds_to(points, target)
    row.update({"best val loss": best_val, "seconds to best": best_time,
                "tokens/s": round(tokens / (t1 - t0)) if t1 > t0 else None})
    return row


def cell(column, value):
    """A table cell: losses to four decimals, seconds to one, counts with thousands separators."""
    if value is None:
        return "not reached" if column.startswith("seconds to") else "n/a"
    if "loss" in column:
        return f"{value:.4f}"
    if "seconds" in column or "(s)" in column:
        return f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows):
    """A Markdown table with the rows' keys as the header."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c, row[c]) for c in header) + " |" for row in rows]
    return "\n".join(lines)


SECTION = re.compile(r"^### (\S+) on (.+?)(?:, seed (\d+))?$")


def read_sections(markdown):
    """(version, data, seed, [(step, val loss)]) for each run section of training_logs.md."""
    sections = []
    for line in markdown.splitlines():
        if m := SECTION.match(line):
            sections.append((m.group(1), m.group(2), m.group(3), []))
        elif sections and (m := STEP_LINE.match(line)):
            sections[-1][3].append((int(m.group(1)), float(m.group(3))))
    return sections
