"""Every code block of README.md and docs/*.md is executed or checked here: the
documentation cannot rot.

One mechanism for every Markdown file: README.md, CHANGELOG.md, docs/*.md and the result
pages docs/results/*.md (docs/accuracy/ holds the accuracy benchmark's per-run records, no
Markdown). A fence is classified by its info string:

- ``python``: executed, in order, in one namespace per file;
- ``bash``: every command line (blank and comment lines skipped, ``\\`` continues a line)
  runs with ``bash -e``; ``svqcast ...`` lines run in this process through
  :func:`svqcast.cli.main` (the same program, without a new interpreter per line), with an
  optional final ``> FILE``;
- ``bash dry-run``: commands that cannot run in a test (real datasets, hours of CPU, a GPU,
  the make targets that build .venv) are checked without doing the work: ``svqcast
  fit|validate|test`` lines run with ``--print_config`` (Lightning's CLI validates every
  option and prints the configuration), ``svqcast reproduce NAME`` with ``--print-config``
  (and its overrides are validated against the preset's configuration), ``python SCRIPT``
  with ``--help`` (exit 0, and every ``--option`` of the line must be one of the script's),
  ``python -m MODULE`` checks that the module and the paths given exist, ``make TARGET``
  checks that the Makefile has the target; a launcher in front of an ``svqcast`` command,
  ``torchrun [OPTIONS] -m svqcast.cli ...`` (its options checked against torchrun's
  ``--help``) or ``srun [OPTIONS] svqcast ...``, is set aside and the command checked as
  above. Any other command fails;
- ``yaml``: parsed; a configuration (top-level trainer/model/data keys) is validated by the
  command's parser; ``yaml file=NAME`` is also written to NAME for the blocks after it;
- ``text``: program output, trees, tables of text: not executed.

Any other fence (none, or another language) fails, so nothing slips through unclassified.
Each file runs in a fresh temporary working directory (relative paths such as ``data/`` and
``runs/`` land there) holding a link to the repository's ``benchmarks/``, with
``MPLBACKEND=Agg`` and .venv/bin first on PATH.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "results").glob("*.md")),
]
README_MAX_LINES = 300
DOCS_MAX_LINES = 600  # a docs chapter or result page
CONFIG_KEYS = {"trainer", "model", "data"}
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", "<", ">>", "2>", "2>&1", "&>"}
LIGHTNING = ("fit", "validate", "test")
TIMEOUT_S = 300

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+)(?P<info>[^`]*)$")


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the block's first content line
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """python | bash | dry-run | yaml | text; anything else is an error."""
        words = self.info.split()
        if words == ["python"]:
            return "python"
        if words == ["bash"]:
            return "bash"
        if words == ["bash", "dry-run"]:
            return "dry-run"
        if words == ["text"]:
            return "text"
        if words[:1] == ["yaml"] and (
            len(words) == 1 or (len(words) == 2 and words[1].startswith("file="))
        ):
            return "yaml"
        raise AssertionError(
            f"{self.where}: fence ```{self.info} is not one of python, bash, bash dry-run, "
            "yaml [file=NAME], text (see tests/test_docs.py)"
        )


def parse_blocks(doc: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, content dedented by the fence's indentation."""
    blocks: list[Block] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            line = lines[j]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            j += 1
        assert j < len(lines), f"{doc.relative_to(ROOT)}:{i + 1}: unclosed fence"
        blocks.append(Block(doc, i + 2, info, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) of a shell block: continuation lines joined, comments skipped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for offset, raw in enumerate(block.text.splitlines()):
        line = raw.rstrip()
        if not pending:
            start = block.line + offset
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    assert not pending, f"{block.where}: a command ends with a line continuation"
    return out


# --------------------------------------------------------------------------- running


def run_svqcast(args: list[str]) -> tuple[int, str, str]:
    """``svqcast ARGS`` in this process: (exit status, stdout, stderr)."""
    from svqcast.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(args)
    except SystemExit as exc:  # --print_config and --help exit through argparse
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return rc, out.getvalue(), err.getvalue()


def _in_process(words: list[str], cmd: str) -> bool:
    return (
        words[:1] == ["svqcast"]
        and not SHELL_OPERATORS & set(words)
        and not any(c in cmd for c in "$`")
        and words.count(">") <= 1
        and (">" not in words or words[-2] == ">")
    )


def run_command(where: str, cmd: str, cwd: Path) -> None:
    words = shlex.split(cmd, comments=True)
    if _in_process(words, cmd):
        target = None
        if ">" in words:
            target, words = cwd / words[-1], words[:-2]
        rc, out, err = run_svqcast(words[1:])
        assert rc == 0, f"{where}: `{cmd}` exited {rc}:\n{err[-3000:]}"
        if target is not None:
            target.write_text(out)
        else:
            print(out)
        return
    proc = subprocess.run(
        ["bash", "-e", "-c", cmd],
        cwd=cwd,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    print(proc.stdout)
    assert proc.returncode == 0, (
        f"{where}: `{cmd}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    )


@cache
def script_help(script: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{script} --help exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout


@cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, flags=re.M))


@cache
def torchrun_help() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"torchrun --help exited {proc.returncode}"
    return proc.stdout


def without_launcher(where: str, words: list[str]) -> list[str]:
    """``torchrun [OPTIONS] -m svqcast.cli ARGS`` or ``srun [OPTIONS] svqcast ARGS`` ->
    ``svqcast ARGS`` (torchrun's options checked); any other command as it is."""
    prog = os.path.basename(words[0])
    if prog == "torchrun":
        assert "-m" in words, f"{where}: torchrun without -m svqcast.cli"
        at = words.index("-m")
        assert words[at + 1 : at + 2] == ["svqcast.cli"], f"{where}: torchrun -m {words[at + 1]}"
        for word in words[1:at]:
            if word.startswith("--"):
                option = word.split("=")[0]
                assert re.search(rf"{re.escape(option)}\b", torchrun_help()), (
                    f"{where}: torchrun has no option {option}"
                )
        return ["svqcast", *words[at + 2 :]]
    if prog == "srun":
        at = next((i for i, w in enumerate(words) if w == "svqcast"), None)
        assert at is not None, f"{where}: srun of something other than svqcast"
        return words[at:]
    return words


def check_dry_run(where: str, cmd: str) -> None:
    """Check a command that the tests cannot run, without doing its work."""
    words = without_launcher(where, shlex.split(cmd, comments=True))
    prog, args = os.path.basename(words[0]), words[1:]
    if prog == "svqcast" and args[:1] and args[0] in LIGHTNING:
        rc, out, err = run_svqcast([*args, "--print_config"])
        assert rc == 0, f"{where}: `{cmd} --print_config` exited {rc}:\n{err[-3000:]}"
        assert CONFIG_KEYS <= set(yaml.safe_load(out)), f"{where}: no configuration printed"
    elif prog == "svqcast" and args[:1] == ["reproduce"] and args[1:2] and args[1][0] != "-":
        rc, out, err = run_svqcast([*args, "--print-config"])
        assert rc == 0, f"{where}: `{cmd} --print-config` exited {rc}:\n{err[-3000:]}"
        overrides, rest = [], iter(args[2:])
        for word in rest:  # drop the options of `reproduce` itself; the rest are overrides
            if word in ("--data-root", "--runs-dir"):
                next(rest, None)
            elif word not in ("--print-config", "--list"):
                overrides.append(word)
        if overrides:
            from svqcast.commands.fit import config_parser

            try:
                config_parser().parse_args(["--config", out, *overrides])
            except Exception as exc:  # noqa: BLE001 - any parse error: name the line
                raise AssertionError(f"{where}: `{cmd}`: bad override: {exc}") from None
    elif prog.startswith("python") and args[:1] == ["-m"]:
        assert importlib.util.find_spec(args[1]), f"{where}: no module {args[1]}"
        for word in args[2:]:
            if not word.startswith("-") and ("/" in word or word.endswith(".py")):
                assert (ROOT / word.split("::")[0]).exists(), (
                    f"{where}: no {word} in the repository"
                )
    elif prog.startswith("python") and args[:1] and args[0].endswith(".py"):
        script = ROOT / args[0]
        assert script.is_file(), f"{where}: no script {args[0]} in the repository"
        help_text = script_help(script)
        for word in args[1:]:
            if word.startswith("--"):
                option = word.split("=")[0]
                assert re.search(rf"{re.escape(option)}\b", help_text), (
                    f"{where}: {args[0]} has no option {option}"
                )
    elif prog == "make":
        targets = [w for w in args if not w.startswith("-") and "=" not in w]
        assert targets, f"{where}: `make` without a target"
        for target in targets:
            assert target in make_targets(), f"{where}: the Makefile has no target {target}"
    else:
        raise AssertionError(
            f"{where}: `{cmd}` cannot be checked in a dry-run block; allowed: svqcast "
            "fit|validate|test|reproduce NAME (also behind torchrun -m svqcast.cli or srun), "
            "python SCRIPT, python -m MODULE, make TARGET"
        )


def check_yaml(block: Block, cwd: Path) -> None:
    cfg = yaml.safe_load(block.text)
    if isinstance(cfg, dict) and CONFIG_KEYS & set(cfg):
        from svqcast.commands.fit import config_parser

        config_parser().parse_args(["--config", block.text])
    words = block.info.split()
    if len(words) == 2:
        (cwd / words[1].removeprefix("file=")).write_text(block.text)


def run_python(block: Block, namespace: dict) -> None:
    # padded so that tracebacks name the Markdown file's own line numbers
    code = compile("\n" * (block.line - 1) + block.text, str(block.doc), "exec")
    exec(code, namespace)


# --------------------------------------------------------------------------- tests


@pytest.fixture
def doc_dir(tmp_path, monkeypatch):
    """A fresh working directory with the environment the examples are written for."""
    saved = dict(os.environ)
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    monkeypatch.chdir(tmp_path)
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    yield tmp_path
    os.environ.clear()  # Lightning's seeding and the run-name variable stay in the test
    os.environ.update(saved)


def _id(doc: Path) -> str:
    return doc.relative_to(ROOT).as_posix()


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_code_blocks(doc, doc_dir, record_property):
    counts: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    namespace: dict = {"__name__": "__docs__"}
    for block in parse_blocks(doc):
        kind = block.kind
        start = time.perf_counter()
        if kind == "python":
            run_python(block, namespace)
        elif kind == "bash":
            for line, cmd in commands(block):
                run_command(f"{_id(doc)}:{line}", cmd, doc_dir)
        elif kind == "dry-run":
            for line, cmd in commands(block):
                check_dry_run(f"{_id(doc)}:{line}", cmd)
        elif kind == "yaml":
            check_yaml(block, doc_dir)
        counts[kind] += 1
        seconds[block.where] = time.perf_counter() - start
    summary = ", ".join(f"{counts[k]} {k}" for k in ("python", "bash", "dry-run", "yaml", "text"))
    slowest = sorted(seconds, key=seconds.get, reverse=True)[:3]
    print(f"{_id(doc)}: {summary}; {sum(seconds.values()):.1f} s, slowest blocks:")
    print("\n".join(f"  {where} {seconds[where]:.1f} s" for where in slowest))
    record_property("blocks", dict(counts))


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lowercase, punctuation dropped,
    spaces to hyphens, -1, -2 ... for repeats)."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    seen: Counter[str] = Counter()
    out = set()
    for heading in re.findall(r"^#+ +(.+?) *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        out.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return out


def test_inventory():
    """Cheap checks before anything runs: every fence classified, the README and every docs
    page short, every relative link pointing at a file that exists. Prints the blocks of
    every file."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES
    long = {
        _id(doc): n
        for doc in (ROOT / "docs").rglob("*.md")
        if (n := len(doc.read_text().splitlines())) > DOCS_MAX_LINES
    }
    assert long == {}, f"docs pages over {DOCS_MAX_LINES} lines: split them"
    total: Counter[str] = Counter()
    for doc in DOCS:
        counts = Counter(block.kind for block in parse_blocks(doc))
        total.update(counts)
        print(f"{_id(doc):24} {dict(counts)}")
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if "://" in target:
                continue
            path = doc.parent / target if target else doc
            assert path.exists(), f"{_id(doc)}: broken link {target}"
            if anchor and path.suffix == ".md":
                assert anchor in anchors(path), f"{_id(doc)}: no heading #{anchor} in {target}"
    print(f"{'all':24} {dict(total)}")
    assert total["python"] and total["bash"] and total["dry-run"]


def test_dry_run_sets_launchers_aside_and_checks_what_they_run():
    fit = "svqcast fit --trainer.devices 2 --name x"
    assert without_launcher(
        "w", shlex.split(f"torchrun --nproc_per_node 2 -m svqcast.cli {fit[8:]}")
    ) == (shlex.split(fit))
    assert without_launcher("w", shlex.split(f"srun --ntasks-per-node 2 {fit}")) == shlex.split(fit)
    for bad in (
        "torchrun --nproc_per_nod 2 -m svqcast.cli fit",  # no such torchrun option
        "torchrun --nproc_per_node 2 -m other.module fit",
        "srun hostname",
    ):
        with pytest.raises(AssertionError):
            without_launcher("w", shlex.split(bad))
    with pytest.raises(AssertionError, match="no_such_key"):  # the command itself is checked
        check_dry_run("w", "torchrun --nproc_per_node 2 -m svqcast.cli fit --model.no_such_key 1")
