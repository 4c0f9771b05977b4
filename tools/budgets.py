"""Measure the project against its size budgets: each diff's changed lines, each file's non-blank lines, the shared
block's, main() and train() of v8 on, and the README's bytes. Prints one row each; exits 1 if any is over.

    python tools/budgets.py

Changed lines are those `diff -u a b` marks with + or -, its two header lines left out, blank lines included.
main() and train() are counted by ast, from `def` to the function's last line."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = "# ---- the same in every script"  # the banner of the block every script ends with
DIFFS = {("bigram", "v2"): 70, ("v2", "v3"): 30, ("v3", "v4"): 55, ("v4", "v5"): 60, ("v5", "v6"): 110,
         ("v6", "v7"): 90, ("v7", "v8"): 110, ("v8", "v9"): 120, ("v9", "v10"): 120, ("v10", "v11"): 120,
         ("v11", "v12"): 80, ("v12", "v13"): 100}
FILES = {"bigram": 190, "v2": 215, "v3": 220, "v4": 245, "v5": 280, "v6": 300, "v7": 340, "names/counts": 150,
         "names/bigram": 170, "names/mlp": 190, "names/batchnorm": 230, "names/wavenet": 260}
FUNCTIONS = {f"v{n}": 40 for n in range(8, 14)}  # main() and train(), each
SHARED_LINES, README_BYTES = 64, 14_000


def source(name):
    return (ROOT / f"{name}.py").read_text(encoding="utf-8")


def changed_lines(a, b):
    """The lines `diff -u a b` adds or removes."""
    diff = subprocess.run(["diff", "-u", str(a), str(b)], capture_output=True, text=True).stdout.splitlines()
    return sum(1 for line in diff[2:] if line[:1] in "+-")


def non_blank(text):
    return sum(1 for line in text.splitlines() if line.strip())


def function_lines(text, name):
    """Lines of the module-level function name, def to end; 0 if there is none."""
    return next((node.end_lineno - node.lineno + 1 for node in ast.parse(text).body
                 if isinstance(node, ast.FunctionDef) and node.name == name), 0)


def measure():
    """(what, measured, budget) for every budget."""
    rows = [(f"{a} -> {b}: changed lines", changed_lines(ROOT / f"{a}.py", ROOT / f"{b}.py"), budget)
            for (a, b), budget in DIFFS.items()]
    rows += [(f"{name}.py: non-blank lines", non_blank(source(name)), budget) for name, budget in FILES.items()]
    text = source("bigram")
    rows.append(("the shared block: non-blank lines", non_blank(text[text.index(SHARED):]), SHARED_LINES))
    rows += [(f"{name}.py: {function}()", function_lines(source(name), function), budget)
             for name, budget in FUNCTIONS.items() for function in ("main", "train")]
    rows.append(("README.md: bytes", len((ROOT / "README.md").read_bytes()), README_BYTES))
    return rows


def main():
    rows = measure()
    width = max(len(what) for what, _, _ in rows)
    for what, measured, budget in rows:
        verdict = f"over by {measured - budget}" if measured > budget else "ok"
        print(f"{what:<{width}}  {measured:>6} / {budget:<6} {verdict}")
    over = sum(measured > budget for _, measured, budget in rows)
    print(f"{over} of {len(rows)} over budget" if over else f"all {len(rows)} within budget")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
