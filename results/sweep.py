"""Run several trainings side by side until they end or a deadline passes.

The seed sweeps of the results pages, as one prepared command (for a machine lent for a
fixed time, or two CPU cores overnight)::

    python results/sweep.py --jobs JOBS --out DIR --deadline 480 [--threads 2]

``JOBS`` holds one training a line, ``name: options of run_recbole_ssl.py`` (``#``
starts a comment). Each runs as ``run_recbole_ssl.py <options> --show_progress=False
--checkpoint_dir=DIR/<name> --record_dir=DIR/records``, with its output in
``DIR/<name>.log`` and ``OMP_NUM_THREADS=<threads>``; all start at once. At the deadline
(seconds from the start) the runs still going get SIGTERM: each ends as an interrupted
run, with its last checkpoint (``resume=...``) and its record. The last lines printed
say, per run, its exit status, wall time and the last epoch its log reached.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def read_jobs(path):
    """``[(name, [option, ...]), ...]`` from the jobs file; SystemExit naming the line
    when one is not ``name: options``."""
    jobs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, options = line.partition(":")
            name = name.strip()
            if not sep or not NAME.match(name) or not options.split():
                sys.exit(
                    f"{path}:{number}: expected 'name: options' (name of letters, "
                    f"digits, '.', '_' and '-'), got {line!r}"
                )
            if name in {n for n, _ in jobs}:
                sys.exit(f"{path}:{number}: the name {name!r} is used twice")
            jobs.append((name, options.split()))
    if not jobs:
        sys.exit(f"{path}: no jobs")
    return jobs


def last_epoch(log):
    """The last ``epoch N`` that a run's log reports, or None."""
    try:
        with open(log, errors="replace") as f:
            epochs = re.findall(r"epoch (\d+) training", f.read())
    except OSError:
        return None
    return int(epochs[-1]) if epochs else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", required=True, help="file of 'name: options' lines")
    parser.add_argument(
        "--out", required=True, help="folder for logs, checkpoints, records"
    )
    parser.add_argument("--deadline", type=float, required=True, help="seconds")
    parser.add_argument(
        "--threads", type=int, default=1, help="OMP_NUM_THREADS of each run"
    )
    parser.add_argument(
        "--grace", type=float, default=90, help="seconds from SIGTERM to SIGKILL"
    )
    args = parser.parse_args(argv)
    jobs = read_jobs(args.jobs)
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED="1")
    start = time.monotonic()
    running = {}
    for name, options in jobs:
        command = [
            sys.executable,
            os.path.join(REPO, "run_recbole_ssl.py"),
            *options,
            "--show_progress=False",
            f"--checkpoint_dir={os.path.join(args.out, name)}",
            f"--record_dir={os.path.join(args.out, 'records')}",
        ]
        log = open(os.path.join(args.out, f"{name}.log"), "w")
        log.write(" ".join(command) + "\n")
        log.flush()
        running[name] = (
            subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            ),
            log,
        )
        print(f"started {name}", flush=True)
    ended = {}
    terminated_at = None
    while len(ended) < len(running):
        now = time.monotonic() - start
        for name, (process, log) in running.items():
            if name not in ended and process.poll() is not None:
                ended[name] = (process.returncode, now)
                log.close()
                print(
                    f"ended {name}: exit {process.returncode} after {now:.0f} s",
                    flush=True,
                )
        if terminated_at is None and now >= args.deadline:
            terminated_at = now
            for name, (process, _) in running.items():
                if name not in ended:
                    print(f"deadline: SIGTERM to {name}", flush=True)
                    process.send_signal(signal.SIGTERM)
        if terminated_at is not None and now >= terminated_at + args.grace:
            for name, (process, _) in running.items():
                if name not in ended:
                    print(f"SIGKILL to {name}", flush=True)
                    process.kill()
        time.sleep(1)
    for name, (returncode, wall) in ended.items():
        epoch = last_epoch(os.path.join(args.out, f"{name}.log"))
        print(f"{name}: exit {returncode}, {wall:.0f} s, last epoch {epoch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
