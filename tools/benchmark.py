"""Run a script from the repository root, echo each line it prints with its time, keep the run as a record.

    python tools/benchmark.py [--record=runs/NAME.json [--force]] SCRIPT [--name=value ...]

--record keeps a run that succeeded, never replacing a file unless --force: command (OMP_NUM_THREADS too), device,
PyTorch, date, commit (-dirty if the script is not the commit's), the script's git blob, batch_size * block_size
as its parse_args sets them, the lines."""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from training_logs import PARAMETERS_LINE, ROOT, speed, steps, table


def git(*a):  # --no-optional-locks: git status writes nothing back to the index
    return subprocess.run(["git", "--no-optional-locks", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def tokens_per_step(script, args):
    """batch_size * block_size after the script's own parse_args(args); None where it cannot say."""
    spec = importlib.util.spec_from_file_location("benchmarked_script", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        module.parse_args(list(args))
        return module.batch_size * module.block_size
    except (Exception, SystemExit):  # no parse_args, or it refuses the args here
        return None


def run(script, args):
    """Run `python script args...`, echoing and timestamping each line; return the record."""
    start, lines = time.perf_counter(), []
    name = Path(script).name if Path(script).is_absolute() else str(script)  # as run from the root: names/mlp.py
    threads = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    process = subprocess.Popen([sys.executable, "-u", str(script), *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in process.stdout:
        lines.append([round(time.perf_counter() - start, 3), line.rstrip("\n")])
        print(line, end="", flush=True)
    returncode, wall_time = process.wait(), time.perf_counter() - start
    device = next((m[2] for _, text in lines if (m := PARAMETERS_LINE.match(text))), "unknown")
    if device.startswith("cuda") and returncode == 0:
        import torch
        device = torch.cuda.get_device_name(torch.device(device))
    return {"script": name, "args": args, "command": shlex.join(threads + ["python", name, *args]),
            "returncode": returncode, "device": device, "torch": importlib.metadata.version("torch"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": (git("rev-parse", "--short", "HEAD") or "unknown")  # -dirty: the script is not HEAD's
                      + "-dirty" * bool(git("status", "-s", "--", str(ROOT / script))),
            "blob": git("hash-object", str(ROOT / script)) or None,
            "tokens_per_step": tokens_per_step(script, args) if returncode == 0 else None,
            "wall_time": round(wall_time, 2), "lines": lines}


def main(argv):
    parser = argparse.ArgumentParser(prog="python tools/benchmark.py", usage=__doc__.split("\n\n")[1].strip())
    parser.add_argument("--record", type=Path, help="write the run's record to this JSON file")
    parser.add_argument("--force", action="store_true", help="replace an existing record")
    parser.add_argument("script", help="the training script, from the repository root")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's --name=value arguments")
    options = parser.parse_args(argv)
    if not (ROOT / options.script).is_file():
        parser.error(f"no script {ROOT / options.script}")
    if (path := options.record) and (path.is_dir() or not path.parent.is_dir() or path.exists() and not options.force):
        parser.error(f"--record={path} " + ("exists; add --force" if path.is_file() else "is not a file in a folder"))
    record = run(options.script, options.args)
    if record["returncode"] != 0:
        sys.exit(f"error: run ended with status {record['returncode']}: no record")
    if path:
        path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\n{table([speed(record)])}" if steps(record) else "")


if __name__ == "__main__":
    main(sys.argv[1:])
