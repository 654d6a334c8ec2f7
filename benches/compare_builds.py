#!/usr/bin/env python3
"""Compares the framing codecs of two builds, entry by entry: a regression gate for
changes to the framing code that holds on a loaded machine.

    python3 benches/compare_builds.py REV [--rounds N] [--mode decode|encode|all]
                                          [--sizes 16,256,4096,65536] [--entry NAME ...]

Builds `examples/framing_instructions` twice, at REV (in a temporary git worktree) and
from the working tree, then runs every benchmark entry of both builds alternately, A B A
B, `--rounds` times (default 5), and keeps each build's fastest run: load on the machine
only ever slows a run down, and alternating puts both builds under the same load. Prints
a Markdown table of nanoseconds per message (after / before) and exits 1 when any of
socklab's codecs got more than 5% slower (`--bound`), 2 on bad input. The reference
entries (memcpy, tokio-util, the floors) run the same code in both builds: how far they
move is the noise of the measurement.

The program's own clock (`elapsed_ns=`) times only the decoding or encoding, not building
the streams or starting the process. The build at REV uses the working tree's copy of the
program, so REV may predate it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = "benches/examples/framing_instructions.rs"
# Repetitions per run, by message size: about 0.1-0.3 s of work each.
REPS = {16: 60, 256: 300, 4096: 1500, 65536: 1500}


def fail(message):
    print(f"compare_builds.py: {message}", file=sys.stderr)
    sys.exit(2)


def build(tree, target_dir):
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "socklab-benches", "--example", "framing_instructions"],
        cwd=tree,
        env={**os.environ, "CARGO_TARGET_DIR": target_dir},
        check=True,
    )
    return os.path.join(target_dir, "release", "examples", "framing_instructions")


def ns_per_message(binary, mode, entry, size):
    reps = REPS.get(size, 300)
    out = subprocess.run([binary, mode, entry, str(size), str(reps)], capture_output=True, text=True, check=True)
    elapsed = int(out.stdout.split("elapsed_ns=")[1].split()[0])
    messages = max((1 << 20) // size, 8)
    return elapsed / (reps * messages)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the build to compare against (a commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=["decode", "encode", "all"], default="all")
    parser.add_argument("--sizes", default="16,256,4096,65536")
    parser.add_argument("--entry", action="append", help="only this entry (repeatable)")
    parser.add_argument("--bound", type=float, default=1.05, help="slowest accepted after/before (default 1.05)")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        if any(s < 1 for s in sizes) or args.rounds < 1:
            raise ValueError
    except ValueError:
        fail(f"--sizes must be positive byte counts (like 16,256) and --rounds at least 1, got {args.sizes!r} and {args.rounds}")
    if subprocess.run(["git", "rev-parse", "--verify", "--quiet", args.rev + "^{commit}"], cwd=ROOT, capture_output=True).returncode:
        fail(f"{args.rev!r} is not a commit of this repository")

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    worktree = tempfile.mkdtemp(prefix="socklab-compare-")
    try:
        subprocess.run(["git", "worktree", "add", "--quiet", "--detach", worktree, args.rev], cwd=ROOT, check=True)
        shutil.copy(os.path.join(ROOT, EXAMPLE), os.path.join(worktree, EXAMPLE))
        before = build(worktree, os.path.join(target, "compare-builds-before"))
        after = build(ROOT, target)
        modes = ["decode", "encode"] if args.mode == "all" else [args.mode]
        slower = []
        for mode in modes:
            listed = subprocess.run([after, "list", mode], capture_output=True, text=True, check=True).stdout.split("\n")
            entries = [e for e in listed if e and (not args.entry or e in args.entry)]
            print(f"\n| {mode}, ns per message | size | before ({args.rev}) | after | after / before |")
            print("|---|---|---|---|---|")
            for size in sizes:
                for entry in entries:
                    runs = {before: [], after: []}
                    for _ in range(args.rounds):
                        for binary in (before, after):
                            runs[binary].append(ns_per_message(binary, mode, entry, size))
                    b, a = min(runs[before]), min(runs[after])
                    # Only socklab's own codecs can fail the gate; the other entries
                    # (memcpy, tokio-util, the floors) are the same code in both builds,
                    # and how far they move shows the measurement's noise.
                    own = "socklab" in entry
                    flag = " **slower**" if a / b > args.bound and own else ""
                    if flag:
                        slower.append(f"{mode} {entry} at {size} B: {a / b:.3f}")
                    print(f"| {entry} | {size} | {b:.3f} | {a:.3f} | {a / b:.3f}{flag} |", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", worktree], cwd=ROOT, capture_output=True)
        shutil.rmtree(worktree, ignore_errors=True)
    if slower:
        print(f"\nslower than {args.bound:.2f}x before: " + "; ".join(slower))
        sys.exit(1)


if __name__ == "__main__":
    main()
