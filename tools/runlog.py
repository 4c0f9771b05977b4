"""Run a training script with its output timestamped, and read the figures out of a run.

A run is kept as a record (a JSON-serialisable dict): the command, the device, the
PyTorch version, the date, the git commit, and every line the script printed with
the seconds since the process started. benchmark.py makes records;
training_logs.py writes them into training_logs.md; plot_losses.py reads that file
back. The parsing and table code use only the standard library, so that they are
testable anywhere; torch is imported only when a run is recorded, to name the GPU
and the PyTorch version, and by the training script that tokens_per_step loads to
read its batch and block sizes for the Speed table.

A record may also carry "version", a label such as "v7" that replaces the one
derived from its script (for a run made with an older file whose training code
now lives under another name), and "note", a sentence shown with the run.
"""

import datetime
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
from collections import namedtuple
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


def version(record):
    """The run's label in the tables: its "version" where given, else its script's name."""
    return record.get("version") or record["script"].removesuffix(".py")


def tokens_per_step(script, args):
    """batch_size * block_size as the script itself resolves them from its defaults and args,
    or None where it cannot say: the file is gone, or its apply_overrides exits because it
    refuses an argument here (an output path in a directory this machine lacks, say)."""
    spec = importlib.util.spec_from_file_location("benchmarked_script", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        module.apply_overrides(args)
    except (FileNotFoundError, SystemExit):
        return None
    return module.batch_size * module.block_size


def summary(record):
    """The figures of the training-log summary table for one run."""
    points = steps(record["lines"])
    _, last_step, final_train, final_val = points[-1]
    return {
        "version": version(record),
        "data": data_label(record["args"]),
        "device": record["device"],
        "parameters": parameters(record["lines"]),
        "steps": last_step,
        "final train loss": final_train,
        "final val loss": final_val,
        "best val loss": min(val for *_, val in points),
        "wall time (s)": record["wall_time"],
        "commit": record["commit"],
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
    # the file that holds the run's training code today: the version's, not always the one that ran
    tokens = tokens_per_step(version(record) + ".py", record["args"])
    row = {"version": version(record), "data": data_label(record["args"]), "device": record["device"]}
    for target in targets:
        row[f"seconds to val ≤ {target:.2f}"] = seconds_to(points, target)
    row.update({"best val loss": best_val, "seconds to best": best_time,
                "tokens/s": round((s1 - s0) * tokens / (t1 - t0)) if tokens and t1 > t0 else None})
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
DATE_LINE = re.compile(r"^- date: .*?; commit ([^;\s]+)")
DEVICE_LINE = re.compile(r"^- device: (.+?); PyTorch ")
Section = namedtuple("Section", "version data seed commit points device", defaults=(None,))


def read_sections(markdown):
    """A Section (version, data, seed, commit, [(step, val loss)], device) for each run of
    training_logs.md; seed, commit and device are None where the section does not give them."""
    sections = []
    for line in markdown.splitlines():
        if m := SECTION.match(line):
            sections.append(Section(m.group(1), m.group(2), m.group(3), None, []))
        elif sections and (m := DATE_LINE.match(line)):
            sections[-1] = sections[-1]._replace(commit=m.group(1))
        elif sections and (m := DEVICE_LINE.match(line)):
            sections[-1] = sections[-1]._replace(device=m.group(1))
        elif sections and (m := STEP_LINE.match(line)):
            sections[-1].points.append((int(m.group(1)), float(m.group(3))))
    return sections
