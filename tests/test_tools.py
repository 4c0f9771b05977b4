"""The tools: benchmark.py records a run, training_logs.py turns records into tables, sections and a plot,
build_input.py cleans the plays. Fast and hermetic: tiny scripts and files in tmp_path, any cwd."""

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script, run_main, tiny_args

sys.dont_write_bytecode = True  # importing the tools leaves no __pycache__ in the repository
ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"


def load(name):
    """tools/name.py as a module, registered under its name (benchmark.py imports training_logs)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


training_logs, benchmark, build_input = load("training_logs"), load("benchmark"), load("build_input")
CLASSIC_PATH = "--data_path=../shared/data/tinyshakespeare.txt"
LINES = [[1.0, "10,788,929 parameters, training on cuda"],
         [5.0, "step 0: train loss 4.2000, val loss 4.2100"],
         [15.0, "step 100: train loss 1.6000, val loss 1.5200 | 100.0 ms/step, 10 s left"],
         [20.0, "step 200: train loss 1.4000, val loss 1.4900 (2.150 bits/char)"],
         [25.0, "step 300: train loss 1.3000, val loss 1.4600 (2.106 bits/char) | 24.0 s"],
         [26.0, "the sample"]]


def record(script="v7.py", args=(), lines=LINES, **keys):
    """A record as benchmark.py writes it, with optional keys such as version and note."""
    return {"script": script, "args": list(args), "command": " ".join(["python", script, *args]), "returncode": 0,
            "device": "NVIDIA H100 80GB HBM3", "torch": "2.x", "date": "2026-01-01 00:00 UTC", "commit": "abc1234",
            "blob": "f" * 40, "tokens_per_step": 64 * 256, "wall_time": 30.0, "lines": lines, **keys}


def fake_script(tmp_path):
    """A training script in tmp_path: batch 4 x block 8 unless --name=value says otherwise, two step
    lines, exit status --status; it leaves a file named ran beside itself when it runs."""
    script = tmp_path / "fake.py"
    script.write_text("import sys\nfrom pathlib import Path\nbatch_size, block_size, status = 4, 8, 0\n\n"
                      "def parse_args(argv):\n    for a in argv:\n"
                      "        name, _, value = a.removeprefix('--').partition('=')\n"
                      "        globals()[name] = int(value)\n\n"
                      "if __name__ == '__main__':\n    parse_args(sys.argv[1:])\n"
                      "    Path(__file__).with_name('ran').touch()\n"
                      "    print('1,234 parameters, training on cpu')\n"
                      "    print('step 0: train loss 4.0000, val loss 4.1000')\n"
                      "    print('step 2: train loss 1.5000, val loss 1.4900 (2.150 bits/char) | 0.1 s')\n"
                      "    sys.exit(status)\n")
    return script


def short_exit(function, argv, capsys):
    """The message a tool's main exits with (its own, or argparse's on stderr), checked to be short."""
    with pytest.raises(SystemExit) as exit_info:
        function(argv)
    message = exit_info.value.code if isinstance(exit_info.value.code, str) else capsys.readouterr().err.strip()
    assert exit_info.value.code != 0 and 1 <= len(message.splitlines()) <= 3
    return message


def test_benchmark_record_has_command_blob_device_torch_sizes_and_timestamped_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the command names the thread count it ran with
    script, saved = fake_script(tmp_path), tmp_path / "run.json"
    benchmark.main([f"--record={saved}", str(script), "--batch_size=2"])
    run = json.loads(saved.read_text())
    assert (run["script"], run["args"]) == ("fake.py", ["--batch_size=2"])
    assert run["command"] == "OMP_NUM_THREADS=1 python fake.py --batch_size=2"
    source = script.read_bytes()
    assert run["blob"] == hashlib.sha1(b"blob %d\0" % len(source) + source).hexdigest()
    assert (run["returncode"], run["device"], run["tokens_per_step"]) == (0, "cpu", 2 * 8)
    assert run["torch"] == importlib.metadata.version("torch") and run["date"].endswith(" UTC") and run["commit"]
    assert [text for _, text in run["lines"]] == [
        "1,234 parameters, training on cpu", "step 0: train loss 4.0000, val loss 4.1000",
        "step 2: train loss 1.5000, val loss 1.4900 (2.150 bits/char) | 0.1 s"]
    assert [t for t, _ in run["lines"]] == sorted(t for t, _ in run["lines"]) and run["wall_time"] > 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("| fake | input.txt | cpu | ")  # its Speed row


def test_benchmark_writes_no_record_of_a_failed_run(tmp_path, capsys):
    saved = tmp_path / "run.json"
    message = short_exit(benchmark.main, [f"--record={saved}", str(fake_script(tmp_path)), "--status=3"], capsys)
    assert "status 3" in message and (tmp_path / "ran").exists() and not saved.exists()


def test_benchmark_never_replaces_a_record_nor_starts_the_run(tmp_path, capsys):
    saved = tmp_path / "run.json"
    saved.write_text("an earlier run")
    message = short_exit(benchmark.main, [f"--record={saved}", str(fake_script(tmp_path))], capsys)
    assert message.endswith(f"--record={saved} exists, and a tool writes only new files")
    assert saved.read_text() == "an earlier run" and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", ["v2.py", "tools/new.py", "input.txt", "names/names.txt", "output.txt", "README.md",
                                  "runs/tuning/README.md", "runs/v2_input.json"])
def test_benchmark_refuses_a_record_over_a_file_of_the_project(tmp_path, capsys, name):
    target = ROOT / name  # tracked by git, or any .py, or the data, or a record already kept: never replaced
    before = target.read_bytes() if target.exists() else None
    message = short_exit(benchmark.main, [f"--record={target}", str(fake_script(tmp_path))], capsys)
    assert ("file of the project" in message or "exists" in message) and not (tmp_path / "ran").exists()
    assert (target.read_bytes() if target.exists() else None) == before


@pytest.mark.parametrize("own", [False, True])
def test_training_logs_writes_its_own_output_anew_and_no_other_file_that_exists(own, tmp_path, capsys, monkeypatch):
    """A user's notes outside the project stay as they are; training_logs.md, the tool's own output, is written."""
    (tmp_path / "run.json").write_text(json.dumps(record()))
    out = tmp_path / ("training_logs.md" if own else "mynotes.md")
    out.write_text("my notes")
    if own:  # the tool's documented output, as it would be in the project's root
        monkeypatch.setattr(training_logs, "ROOT", tmp_path)
        training_logs.main([str(tmp_path / "run.json"), f"--out={out}"])
        assert out.read_text().startswith("# Training logs")
    else:
        message = short_exit(training_logs.main, [str(tmp_path / "run.json"), f"--out={out}"], capsys)
        assert message.endswith(f"--out={out} exists, and a tool writes only new files")
        assert out.read_text() == "my notes"


def test_training_logs_refuses_a_record_nested_too_deep_in_one_line(tmp_path, capsys):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    message = short_exit(training_logs.main, [str(tmp_path / "deep.json"), f"--out={tmp_path / 'out.md'}"], capsys)
    assert message.startswith(f"error: {tmp_path / 'deep.json'}: RecursionError")
    assert not (tmp_path / "out.md").exists()


@pytest.mark.parametrize("tool", ["build_input", "build_names"])
def test_the_build_tools_refuse_an_out_that_exists_other_than_their_own_file(tool, tmp_path):
    (mine := tmp_path / "mine.txt").write_text("the user's file")
    result = subprocess.run([sys.executable, "-B", str(TOOLS / f"{tool}.py"), f"--out={mine}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith(f"--out={mine} exists, and a tool writes only new files")
    assert mine.read_text() == "the user's file"


def test_a_failed_write_leaves_the_file_as_it_was_and_no_temporary_file(tmp_path):
    (path := tmp_path / "run.json").write_text("an earlier run")
    with pytest.raises(TypeError):
        training_logs.write(path, "not bytes")
    assert path.read_text() == "an earlier run" and list(tmp_path.iterdir()) == [path]


def test_summary_row_has_the_final_and_best_losses_bits_per_character_and_the_commit():
    assert training_logs.summary(record("v5.py")) == {
        "version": "v5", "data": "input.txt", "device": "NVIDIA H100 80GB HBM3", "parameters": 10_788_929,
        "steps": 300, "final train loss": 1.3, "final val loss": 1.46, "final val bits/char": 2.106,
        "best val loss": 1.46, "wall time (s)": 30.0, "commit": "abc1234"}


def test_a_names_run_without_step_lines_is_summarised_from_its_train_and_val_loss_lines():
    counts = record("names/counts.py", lines=[[1.0, "729 parameters, training on cpu"], [1.5, "train loss 2.4542"],
                                              [1.5, "val loss 2.4541"], [1.6, "emma"]])
    text = training_logs.render([counts])
    assert "| names/counts | names/names.txt | NVIDIA H100 80GB HBM3 | 729 | n/a | 2.4542 | 2.4541 | 3.541 | 2.4541 |" \
           in text[text.index("## Other runs"):]


def test_a_names_run_with_step_lines_ends_at_its_whole_split_val_loss_not_the_last_estimate():
    mlp = record("names/mlp.py", lines=[[2.0, "step 0: train loss 25.4949, val loss 25.4763"],
                                        [21.0, "step 30000: train loss 2.0507, val loss 2.0900"],
                                        [22.0, "train loss 2.0545"], [22.1, "val loss 2.1115"]])
    row = training_logs.summary(mlp)
    assert (row["steps"], row["final train loss"], row["final val loss"], row["best val loss"]) == (
        30000, 2.0545, 2.1115, 2.1115)


def test_plot_points_are_val_bits_per_character_from_the_line_else_its_loss_over_ln_2():
    v10 = record("v10.py", lines=[[3.2, "step 0: train loss 6.2545, val loss 6.2543 (4.675 bits/char) | 3.2 s"]])
    v4 = record("v4.py", lines=[[9.0, "step 500: train loss 2.0000, val loss 2.0794"]])  # ln 8: 3 bits
    assert training_logs.bits_per_char(v10) == [(3.2, 0, 4.675)]
    assert training_logs.bits_per_char(v4) == [(9.0, 500, pytest.approx(3.0, abs=1e-4))]


def test_plot_draws_bits_per_character_by_step_above_and_by_wall_clock_second_below():
    figure_module = pytest.importorskip("matplotlib.figure")
    run = record("v10.py")
    by_step, by_second = training_logs.draw([run], figure_module.Figure).axes  # one device: one column
    assert by_step.get_ylabel() == by_second.get_ylabel() == "val bits per character"
    assert list(by_step.lines[0].get_xdata()) == [0, 100, 200, 300]
    assert list(by_second.lines[0].get_xdata()) == [5.0, 15.0, 20.0, 25.0] and by_second.get_xscale() == "log"
    assert list(by_second.lines[0].get_ydata()) == [p[2] for p in training_logs.bits_per_char(run)]


def test_speed_row_gives_the_seconds_to_each_target_and_the_tokens_per_second():
    row = training_logs.speed(record(args=[CLASSIC_PATH]))
    assert row["data"] == training_logs.CLASSIC
    assert (row["seconds to val ≤ 1.50"], row["seconds to val ≤ 1.47"]) == (20.0, 25.0)
    assert (row["best val loss"], row["seconds to best"]) == (1.46, 25.0)
    assert row["tokens/s"] == 200 * 64 * 256 // 10  # 200 steps from the second step line to the last, in 10 s


def test_speed_row_says_not_reached_for_a_target_the_run_never_reached():
    row = training_logs.speed(record(lines=LINES[:3]))
    assert training_logs.table([row]).splitlines()[2].count("| not reached") == 2


def test_training_logs_from_two_records_has_both_tables_and_a_section_per_run(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    paths[0].write_text(json.dumps(record("v6.py", [CLASSIC_PATH, "--seed", "2"], version="v7", note="an older file")))
    paths[1].write_text(json.dumps(record("v5.py", [], blob=None)))
    out = tmp_path / "training_logs.md"
    training_logs.main([f"--out={out}", *map(str, paths)])
    text = out.read_text()
    summary, speed = text[text.index("## Summary"):text.index("## Speed")], text[text.index("## Speed"):]
    assert summary.index("| v5 | input.txt |") < summary.index("| v7 | tinyshakespeare (classic) |")
    assert "| v7 | tinyshakespeare (classic) | NVIDIA H100 80GB HBM3 | 20.0 | 25.0 | 1.4600 | 25.0 | 327,680 |" in speed
    assert "| v5 |" not in speed[:speed.index("## Runs")]  # v5 ran on input.txt: not in the Speed table
    assert text.count("\n### ") == 2 and "### v7 on tinyshakespeare (classic), seed 2" in text
    assert "- note: an older file" in text and "- script: v5.py, git blob unknown" in text
    assert "\nstep 300: train loss 1.3000, val loss 1.4600 (2.106 bits/char) | 24.0 s\n" in text


def test_training_logs_given_a_folder_reads_every_record_under_it_names_too(tmp_path):
    (runs := tmp_path / "runs" / "names").mkdir(parents=True)
    (runs.parent / "v5.json").write_text(json.dumps(record("v5.py")))
    (runs / "mlp.json").write_text(json.dumps(record("names/mlp.py", lines=[[9.0, "val loss 2.1500"]])))
    training_logs.main([f"--out={tmp_path / 'logs.md'}", str(tmp_path / "runs")])
    text = (tmp_path / "logs.md").read_text()
    assert "### v5 on input.txt" in text and "### names/mlp on names/names.txt" in text


def test_plot_without_matplotlib_is_refused_before_any_work(tmp_path):
    (fake := tmp_path / "site" / "matplotlib").mkdir(parents=True)  # shadows any installed matplotlib
    (fake / "__init__.py").write_text("raise ImportError('matplotlib is missing here')\n")
    (path := tmp_path / "run.json").write_text(json.dumps(record()))
    out, png = tmp_path / "logs.md", tmp_path / "curves.png"
    result = subprocess.run([sys.executable, "-B", str(TOOLS / "training_logs.py"), f"--out={out}", f"--plot={png}",
                             str(path)], env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr) == (1, "error: --plot needs matplotlib (pip install matplotlib)\n")
    assert not out.exists() and not png.exists()


@pytest.mark.parametrize("tool, args", [
    ("benchmark", []), ("benchmark", ["no_such_script.py"]), ("benchmark", ["--records=x.json", "v7.py"]),
    ("benchmark", ["{root}/input.txt"]), ("benchmark", ["--record={tmp}/no/run.json", "{root}/bigram.py"]),
    ("training_logs", []), ("training_logs", ["no_such_record.json"]), ("training_logs", ["{tmp}/not.json"]),
    ("training_logs", ["{tmp}/empty"]),
    ("training_logs", ["--plot={tmp}/curves.md", "{tmp}/run.json"]),
    ("training_logs", ["--plot={tmp}/no/curves.png", "{tmp}/run.json"]),
    ("training_logs", ["--plot={root}/README.md", "{tmp}/run.json"]),
    ("build_input", ["--sdist"]), ("build_input", ["--sdist={tmp}/not.json"])])
def test_bad_arguments_give_a_short_error_without_a_traceback_before_any_work(tmp_path, tool, args):
    (tmp_path / "not.json").write_text("not JSON, nor an sdist")
    (tmp_path / "run.json").write_text(json.dumps(record()))
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, root=ROOT) for a in args] + [f"--out={tmp_path / 'out'}"] * (tool != "benchmark")
    result = subprocess.run([sys.executable, "-B", str(TOOLS / f"{tool}.py"), *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert 1 <= len(result.stderr.splitlines()) <= 2 and not (tmp_path / "out").exists()


def test_data_label_reads_data_path_given_either_way():
    assert training_logs.data(record(args=["--data_path", "x/tinyshakespeare.txt"])) == training_logs.CLASSIC
    assert training_logs.data(record(args=["--data_path=a.txt", "--data_path=b.txt"])) == "b.txt"  # the last counts


def test_speeches_drop_front_matter_headings_and_stage_directions():
    play = ("TITLE\n\nKING, of somewhere\n\nACT I.\n\nSCENE I. A hall.\n\n[Enter KING.]\n\nKING.\n"
            "What news?  [Aside.] He looks\npale.\n\n[Exit KING; and then\na long direction.]\n\nNone at all.\n\n"
            "Lady Capulet.\n[Kneels.]\nCome.\n\nSaddle my horse.\n\n[Enter a MESSENGER\n\nMESSENGER.\nSir.\n"
            "{To KING] Now.\n\nACT II.\n\nthe end of a direction\nthat lost its opening bracket.]\n\n1 KEEPER.\nGo.\n")
    assert build_input.speeches(play) == [("KING", ["What news? He looks", "pale.", "None at all."]),
                                          ("Lady Capulet", ["Come.", "Saddle my horse."]),
                                          ("MESSENGER", ["Sir.", "Now."]), ("1 KEEPER", ["Go."])]
    assert build_input.format_corpus([play]).startswith("KING:\nWhat news? He looks\npale.\nNone at all.\n\nLady")


def test_tokens_per_step_is_batch_times_block_as_the_scripts_parse_args_sets_them(tmp_path):
    assert benchmark.tokens_per_step("bigram.py", ["--batch_size=3", "--block_size=5", "--device=cpu"]) == 15
    assert benchmark.tokens_per_step("bigram.py", ["--batch_size=many"]) is None  # it refuses the args: unknown


def test_v10_runs_are_summarised_but_left_out_of_the_speed_table():
    text = training_logs.render([record("v7.py", [CLASSIC_PATH]), record("v10.py", [CLASSIC_PATH])])
    assert "| v10 | tinyshakespeare (classic) |" in text[:text.index("## Speed")]
    assert "| v10 |" not in text[text.index("## Speed"):text.index("## Runs")]


def test_a_run_without_step_lines_goes_after_the_series_and_out_of_its_tables(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    paths[0].write_text(json.dumps(record("v5.py", [])))
    paths[1].write_text(json.dumps(record("names/mlp.py", [], lines=[[9.0, "val loss 2.1500"]])))
    out = tmp_path / "training_logs.md"
    training_logs.main([f"--out={out}", *map(str, paths)])
    text = out.read_text()
    assert "names/mlp" not in text[:text.index("## Other runs: names/ and benchmarks")]
    assert "### names/mlp on names/names.txt" in text and "\nval loss 2.1500\n" in text


def test_a_series_run_without_step_lines_is_refused(tmp_path, capsys):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(record("v5.py", [], lines=[[1.0, "no steps"]])))
    assert "without step lines" in short_exit(training_logs.main, [f"--out={tmp_path / 'o.md'}", str(path)], capsys)


# ---- sampling.py --------------------------------------------------------------------

@pytest.fixture(scope="module")
def v13_checkpoint(tmp_path_factory):
    """A tiny v13 run on input.txt's first 20,000 characters: the folder holding its text.txt and ckpt.pt."""
    folder = tmp_path_factory.mktemp("v13")
    (folder / "text.txt").write_text((ROOT / "input.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    assert run_main("v13", tiny_args(load_script("v13"), vocab_size=300, ckpt_path=folder / "ckpt.pt")
                    + [f"--data_path={folder / 'text.txt'}"])[0] == 0
    return folder


def test_sampling_loss_compares_the_recomputed_window_with_the_cache_on_the_same_tokens(v13_checkpoint, capsys):
    load("sampling").main(["loss", str(v13_checkpoint / "ckpt.pt"), "--tokens=40"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("the window computed again (v12): ") and lines[1].startswith("through the cache (v13)")
    assert "40 tokens (" in lines[2] and "block_size 8; the logits of the first 7 differ by at most" in lines[2]
    assert float(lines[2].rsplit(" ", 1)[1]) < 1e-4  # within block_size the cache computes what the window does


@pytest.mark.parametrize("args", [[], ["loss"], ["loss", "{tmp}/none.pt"], ["loss", "{tmp}/text.pt"],
                                  ["speed", "--tokens=0"], ["sideways"], ["speed", "extra"]])
def test_sampling_refuses_what_it_cannot_measure_in_two_lines(args, tmp_path, capsys):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    short_exit(load("sampling").main, [a.format(tmp=tmp_path) for a in args], capsys)


def test_sampling_loss_refuses_a_checkpoint_with_one_byte_changed_as_the_scripts_do(v13_checkpoint, tmp_path, capsys):
    saved = bytearray((v13_checkpoint / "ckpt.pt").read_bytes())
    saved[len(saved) // 2] ^= 1
    (tmp_path / "altered.pt").write_bytes(bytes(saved))
    message = short_exit(load("sampling").main, ["loss", str(tmp_path / "altered.pt"), "--tokens=40"], capsys)
    assert message == (f"error: --ckpt_path={tmp_path / 'altered.pt'}: no checkpoint there, or one changed since it"
                       " was saved")


def test_sampling_loss_refuses_more_tokens_than_the_val_text_holds(v13_checkpoint, capsys):
    message = short_exit(load("sampling").main, ["loss", str(v13_checkpoint / "ckpt.pt")], capsys)  # 2000
    assert message.startswith("error: --tokens=2000: the val text of ") and "can be predicted" in message


def test_sampling_loss_says_when_the_text_is_not_the_one_trained_on(v13_checkpoint, tmp_path, capsys):
    text = v13_checkpoint / "text.txt"
    before = text.read_text(encoding="utf-8")
    try:  # another text at the saved path, as when input.txt is replaced
        text.write_text(before[::-1], encoding="utf-8")
        load("sampling").main(["loss", str(v13_checkpoint / "ckpt.pt"), "--tokens=40"])
    finally:
        text.write_text(before, encoding="utf-8")
    assert ", not the text the model was trained on, block_size 8" in capsys.readouterr().out


def test_a_records_own_data_and_label_name_its_text_and_its_line_in_the_legend():
    own = record(args=["--data_path=/tmp/slice.txt"], data="the first lines of input.txt", label="batch 16")
    assert training_logs.data(own) == "the first lines of input.txt"
    assert training_logs.data(record(args=["--data_path=/tmp/slice.txt"])) == "/tmp/slice.txt"
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    figure = training_logs.draw([own], Figure)
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ["v7, batch 16"]
    assert figure.axes[0].get_title() == "NVIDIA H100 80GB HBM3: the first lines of input.txt"


def test_the_plot_shows_one_run_per_file_on_input_txt_and_leaves_experiments_out():
    runs = [record("v7.py"), record("v7.py", args=[CLASSIC_PATH]), record("v7.py", label="batch 16"),
            record("v5.py", device="cpu")]
    assert training_logs.front(runs) == [runs[0], runs[3]]


# ---- budgets.py -------------------------------------------------------------------

def test_budgets_counts_the_lines_diff_marks_changed_blank_ones_included(tmp_path):
    budgets = load("budgets")
    (a := tmp_path / "a.py").write_text("x = 1\n\ny = 2\nz = 3\n")
    (b := tmp_path / "b.py").write_text("x = 1\ny = 20\nz = 3\nw = 4\n")
    assert budgets.changed_lines(a, b) == 4  # - (blank), - y = 2, + y = 20, + w = 4


def test_budgets_counts_a_function_from_def_to_its_last_line_and_non_blank_lines():
    budgets = load("budgets")
    text = "def main():\n    a = 1\n\n    return a\n\n\ndef train():\n    pass\n"
    assert (budgets.function_lines(text, "main"), budgets.function_lines(text, "train")) == (4, 2)
    assert budgets.function_lines(text, "sample") == 0 and budgets.non_blank(text) == 5


def test_budgets_measures_every_budget_of_the_project():
    rows = load("budgets").measure()
    assert len(rows) == 12 + 12 + 1 + 12 + 1  # diffs, files, the shared block, main() and train(), the README
    assert all(measured > 0 for _, measured, _ in rows)
