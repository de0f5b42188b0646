#!/usr/bin/env python3
"""bench/redis_scaling.py: relay throughput of one rtcsvc process against two sharing Redis.

    .venv/bin/python bench/redis_scaling.py            # 3 repetitions (~3 min)
    .venv/bin/python bench/redis_scaling.py --reps 1 --msgs 1000

Runs the shared load generator's ``pairs`` scenario (``loadgen.js``: R rooms of 2, each peer
sends M signals to its partner, W in flight) against four set-ups, in alternation:

  mem-1     one process, in-memory hub, loadgen connects to it directly (the baseline)
  mem-1-lb  the same behind Apache's balancer (deploy/apache/rtcsvc-balancer.conf): proxy cost
  redis-1   one process with --redis behind the balancer (both members are that process): pairs
            on one process skip Redis, so this is the Redis hub's bookkeeping cost
  redis-2   two processes with --redis behind the balancer: "bybusyness" alternates the sockets,
            so the two peers of every pair are on different processes and every signal crosses
            Redis (PUBLISH by a Lua script, one SUBSCRIBE channel per process)

and prints msgs/s (median), the loss/duplicate/reorder counts (all must be 0) and the CPU
seconds each component used per 1,000 messages. On a 2-core machine shared by the generator,
Apache, Redis and the servers, the numbers say what each hop costs rather than how far two cores
scale; docs/scaling.md discusses them. Needs redis-server, apache2 and the yardstick copy that
``bench/run`` prepares (``/tmp/rtcsvc-bench-$UID/yardstick``; run ``bench/run --quick --only
churn-50 --servers rtcsvc`` once if it is missing). Every run is bounded by loadgen's
``--max-time``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.apache import MODULES, ApacheProcess  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.service import RtcsvcProcess, free_port  # noqa: E402

BALANCER_MODULES = MODULES + ("slotmem_shm", "proxy_balancer", "lbmethod_bybusyness",
                              "lbmethod_byrequests")
SETUPS = ("mem-1", "mem-1-lb", "redis-1", "redis-2")
SERVER_ARGS = ["--rate-limit", "0", "--handshake-rate", "0", "--trusted-proxy", "127.0.0.1"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def apache_cpu(apache: ApacheProcess) -> float:
    """Apache's parent and children (the mpm_event workers that run the tunnels)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if int(entry.name) == apache.process.pid or ppid == apache.process.pid:
                    total += cpu_seconds(int(entry.name))
            except (OSError, ValueError):
                pass
    return total


def balancer(work: Path, backends: list[int]) -> ApacheProcess:
    port = free_port()
    return ApacheProcess.start(
        work, ["rtcsvc-balancer.conf"],
        {"RTCSVC_SERVER_NAME": "127.0.0.1", "RTCSVC_HTTP_PORT": str(port),
         "RTCSVC_BACKEND_1": f"127.0.0.1:{backends[0]}",
         "RTCSVC_BACKEND_2": f"127.0.0.1:{backends[-1]}", "RTCSVC_PUBLIC_SCHEME": "http"},
        {"http": port}, modules=BALANCER_MODULES,
    )


def loadgen(yard: Path, url: str, args) -> dict:
    command = ["node", str(yard / "loadgen.js"), "pairs", "--url", url, "--rooms",
               str(args.rooms), "--size", "200", "--window", "8", "--msgs", str(args.msgs),
               "--max-time", "120", "--quiet"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_setup(name: str, work: Path, yard: Path, args) -> dict:
    processes, apache, redis = [], None, None
    try:
        extra = []
        if name.startswith("redis"):
            redis = RedisServer.start(work / "redis")
            extra = ["--redis", redis.url]
        count = 2 if name == "redis-2" else 1
        for i in range(count):
            processes.append(RtcsvcProcess.start(work / f"svc{i}", SERVER_ARGS + extra))
        if name == "mem-1":
            url = processes[0].ws_url
        else:
            apache = balancer(work / "apache", [p.port for p in processes])
            url = f"ws://127.0.0.1:{apache.ports['http']}"
        parts = {f"rtcsvc{i}": p.pid for i, p in enumerate(processes)}
        if redis is not None:
            parts["redis"] = redis.proc.pid
        before = {k: cpu_seconds(pid) for k, pid in parts.items()}
        apache_before = apache_cpu(apache) if apache else 0.0
        result = loadgen(yard, url, args)
        cpu = {k: cpu_seconds(pid) - before[k] for k, pid in parts.items()}
        if apache:
            cpu["apache"] = apache_cpu(apache) - apache_before
        return {"setup": name, "result": result, "cpu": cpu}
    finally:
        if apache:
            apache.stop()
        for p in processes:
            p.stop()
        if redis:
            redis.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rooms", type=int, default=20,
                        help="pairs (Apache's small test MPM holds ~50 tunnels)")
    parser.add_argument("--msgs", type=int, default=2000, help="signals per peer")
    parser.add_argument("--only", help="comma-separated: " + ",".join(SETUPS))
    parser.add_argument("--yardstick", default=os.path.join(
        tempfile.gettempdir(), f"rtcsvc-bench-{os.getuid()}", "yardstick"))
    args = parser.parse_args(argv)
    yard = Path(args.yardstick)
    if not (yard / "node_modules" / "ws").is_dir():
        raise SystemExit(f"no prepared yardstick at {yard}: run bench/run once (see --help)")
    setups = args.only.split(",") if args.only else list(SETUPS)
    runs: dict[str, list] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory(prefix="rtcsvc-redis-bench-") as tmp:
        for rep in range(args.reps):
            for name in setups:
                run = run_setup(name, Path(tmp) / f"{name}-{rep}", yard, args)
                r = run["result"]
                print(json.dumps({"setup": name, "rep": rep, "msgs_per_s": r.get("msgs_per_s"),
                                  "lost": r.get("lost"), "dup": r.get("duplicates"),
                                  "reordered": r.get("reordered"), "cpu": run["cpu"]}),
                      file=sys.stderr)
                runs[name].append(run)
    print(f"\npairs: {args.rooms} rooms of 2, 200 B, window 8, {args.msgs} msgs per peer, "
          f"{args.reps} reps (median)")
    print(f"{'setup':10} {'msgs/s':>9} {'lost/dup/reord':>15}  CPU s per 1k msgs by component")
    for name, done in runs.items():
        rates = [d["result"].get("msgs_per_s") or 0 for d in done]
        bad = [sum(d["result"].get(k) or 0 for d in done)
               for k in ("lost", "duplicates", "reordered")]
        relayed = sum(d["result"].get("received") or d["result"].get("relayed") or 0
                      for d in done) or 1
        cpu: dict[str, float] = {}
        for d in done:
            for k, v in d["cpu"].items():
                cpu[k] = cpu.get(k, 0.0) + v
        cpu_text = " ".join(f"{k}={1000 * v / relayed:.3f}" for k, v in sorted(cpu.items()))
        print(f"{name:10} {statistics.median(rates):9.0f} {'/'.join(map(str, bad)):>15}  "
              f"{cpu_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
