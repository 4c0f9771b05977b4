"""Run a script from the repository root, echo each line it prints with its time, keep the run as a record.

    python tools/benchmark.py [--record=runs/NAME.json] SCRIPT [--name=value ...]

--record keeps a run that succeeded in a new file, never one that exists (as the scripts write), nor in the project
but under runs/: command (OMP_NUM_THREADS too), device, PyTorch, date, commit (-dirty if the script is not the
commit's), the script's git blob, batch_size * block_size as its parse_args sets them, the lines."""

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

from training_logs import PARAMETERS_LINE, ROOT, git, project_file, refusal, speed, steps, table, write


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
    code = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),  # the code as it starts: edits during the
            "commit": (git("rev-parse", "--short", "HEAD") or "unknown")  # run change neither; -dirty: the script
                      + "-dirty" * bool(git("status", "-s", "--", str(ROOT / script))),  # is not HEAD's
            "blob": git("hash-object", str(ROOT / script)) or None}
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
            "returncode": returncode, "device": device, "torch": importlib.metadata.version("torch"), **code,
            "tokens_per_step": tokens_per_step(script, args) if returncode == 0 else None,
            "wall_time": round(wall_time, 2), "lines": lines}


def main(argv):
    parser = argparse.ArgumentParser(prog="python tools/benchmark.py", usage=__doc__.split("\n\n")[1].strip())
    parser.add_argument("--record", type=Path, help="write the run's record to this JSON file")
    parser.add_argument("script", help="the training script, from the repository root")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's --name=value arguments")
    options = parser.parse_args(argv)
    if (script := ROOT / options.script).suffix != ".py" or not script.is_file():
        parser.error(f"no Python script {script}")
    path = options.record  # a new file, and in the project only a record under runs/
    if path and project_file(path) and not (ROOT / "runs" in path.resolve().parents and path.suffix == ".json"):
        parser.error(f"--record={path} is a file of the project; records go under runs/")
    if path and (why := refusal(path)):
        parser.error(f"--record={path} {why}")
    record = run(options.script, options.args)
    if record["returncode"] != 0:
        sys.exit(f"error: run ended with status {record['returncode']}: no record")
    if path:
        write(path, (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    print(f"\n{table([speed(record)])}" if steps(record) else "")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: no traceback, the shell's status for it
        sys.exit(130)
