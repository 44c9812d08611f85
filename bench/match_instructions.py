"""Instructions per article of the matcher, counted by valgrind: a figure that noise can't move.

    .venv/bin/python bench/match_instructions.py [--data ARTICLES.jsonl] [--size 1000]
        [--loop presearch|naive|both|read|select|evaluate]

On a shared machine ``bench/match.py``'s timings move by 10-20% from one run to the next,
the naive loop's most (its working set, every query, competes for the cache), so a change
worth 2% can't be seen in them. This runs one pass over the articles under callgrind and
counts the instructions executed, which repeat to 0.1%: use it to compare two versions of
the code, and ``bench/match.py`` for the times the goals are stated in. Setting up (reading
the articles, compiling the queries, a first pass that fills the caches of first use) is
not counted: the child process waits, uninstrumented, until the parent switches counting
on with ``callgrind_control``. It needs valgrind (``apt install valgrind``); a pass of the
naive loop at 1,000 commitments takes about two minutes under it.

Articles and commitments are those of ``bench/match.py`` (same generator, same seed,
same ``--variants``). ``--loop read|select|evaluate`` counts the presearch up to a stage:
reading the article and the Aho-Corasick pass; then choosing candidates; then evaluating
them (no hits built). The differences between stages, and ``presearch``, tell where an
article's instructions go.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CHILD = "MATCH_INSTRUCTIONS_CHILD"  # set in the child: its value is the flag-file prefix


def child(args: argparse.Namespace, flag: str) -> None:
    """Set up, wait for counting to start, make one pass, exit without tearing down."""
    import gc

    import match as bench_match  # bench/match.py: the same articles and commitments

    from monitor.match import compile_matcher

    articles = bench_match.load_articles(args.data, args.articles)
    real, aliases = bench_match.load_commitments(args.commitments)
    variants_from = articles if args.variants == "frequency" else None
    matcher = compile_matcher(
        bench_match.generate(real, aliases, args.size, articles=variants_from), aliases
    )
    run = stage_runner(matcher, args.loop)
    for title, text in articles:  # first-use caches (folding tables) filled outside the count
        run(title, text)
    gc.collect()
    gc.disable()  # a collection landing in one version's pass and not the other's is noise
    Path(flag + ".ready").touch()
    while not Path(flag + ".go").exists():
        time.sleep(0.02)
    for title, text in articles:
        run(title, text)
    os._exit(0)  # the interpreter's teardown would be counted too


STAGES = ("read", "select", "evaluate")


def stage_runner(matcher: Any, loop: str) -> Callable[[str, str], object]:
    """A pass of ``loop`` over one article: the whole presearch or naive match, or the
    presearch up to a stage. Stages reach into the matcher's internals on purpose: they
    measure its parts, and break loudly if those change."""
    from monitor.match import Document, _PresearchCtx

    if loop == "presearch":
        return matcher.match
    if loop == "naive":
        return matcher.match_without_presearch
    automaton, widths = matcher._automaton, matcher._widths

    def up_to_stage(title: str, text: str) -> object:
        ctx = _PresearchCtx(Document(title, text), automaton, widths)
        if loop == "read":
            return ctx
        numbers = matcher._candidate_numbers(ctx)
        if loop == "evaluate":
            everything = ctx.doc.n_tokens
            for number in numbers:
                matcher._commitments[number].evaluate.find(ctx, 0, everything)
        return numbers

    return up_to_stage


def count(args: argparse.Namespace, loop: str) -> float:
    """Instructions per article of one pass of ``loop``, via callgrind."""
    with tempfile.TemporaryDirectory() as workdir:
        flag = os.path.join(workdir, "flag")
        log = os.path.join(workdir, "valgrind.log")
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={os.path.join(workdir, 'callgrind.out')}",
            f"--log-file={log}",
            sys.executable,
            __file__,
            *sys.argv[1:],
            "--loop",
            loop,
        ]
        env = {**os.environ, CHILD: flag, "PYTHONHASHSEED": "0"}
        process = subprocess.Popen(argv, env=env)
        while not Path(flag + ".ready").exists():
            if process.poll() is not None:
                raise SystemExit(f"the {loop} pass failed before counting; see {log}")
            time.sleep(0.2)
        subprocess.run(
            ["callgrind_control", "--instr=on", str(process.pid)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        Path(flag + ".go").touch()
        process.wait()
        found = re.search(r"Collected\s*:\s*([\d,]+)", Path(log).read_text())
        if found is None:
            raise SystemExit(f"no instruction count in {log}")
        articles = len(_articles(args))
        return int(found.group(1).replace(",", "")) / articles


def _articles(args: argparse.Namespace) -> list[tuple[str, str]]:
    import match as bench_match

    return bench_match.load_articles(args.data, args.articles)


def main(argv: Sequence[str] | None = None) -> int:
    import match as bench_match

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=bench_match.DEFAULT_DATA)
    parser.add_argument("--commitments", type=Path, default=bench_match.DEFAULT_COMMITMENTS)
    parser.add_argument("--size", type=int, default=1000, help="commitments (real + generated)")
    parser.add_argument("--articles", type=int, default=None, help="use only the first N")
    parser.add_argument("--loop", choices=["presearch", "naive", "both", *STAGES], default="both")
    parser.add_argument(
        "--variants", choices=["frequency", "kind"], default="frequency", help="as bench/match.py"
    )
    args = parser.parse_args(argv)
    flag = os.environ.get(CHILD)
    if flag:
        child(args, flag)
        return 0
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    loops = ["presearch", "naive"] if args.loop == "both" else [args.loop]
    result: dict[str, float] = {}
    for loop in loops:
        result[loop] = round(count(args, loop))
        print(f"{loop}: {result[loop] / 1000:,.1f} thousand instructions per article")
    out: dict[str, object] = {"size": args.size, "instructions_per_article": result}
    if len(result) == 2:
        out["ratio"] = round(result["naive"] / result["presearch"], 2)
        print(f"naive / presearch: {out['ratio']}x in instructions")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
