#!/usr/bin/env python3
"""The peer benchmark's ratio table and plot (bench/peer/run.sh).

    report.py FIGURES.txt PLOT.png

Reads the `figure NAME VALUE UNIT` lines, prints one ratio figure per
comparison and size (`figure peer.ratio.<what>_<n> VALUE x`, appended to
FIGURES.txt too), a table of them with DESIGN §9's goals, and draws memory
per node and `kubectl get` time against N for both systems. Every ratio is
oriented so that above 1 means KOLE does better.
"""

import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (name, label, KOLE figure, upstream figure, KOLE better when, goal)
RATIOS = [
    ("memory_per_node", "memory per node, upstream / KOLE (broker apart)",
     "peer.kole.bytes_per_node", "peer.upstream.bytes_per_node", "smaller", 100),
    ("memory_per_node_with_broker", "memory per node, upstream / (KOLE + mosquitto)",
     None, "peer.upstream.bytes_per_node", "smaller", None),
    ("memory_per_node_after_lists", "memory per node after the full lists, upstream / KOLE",
     "peer.kole.bytes_per_node_after_lists", "peer.upstream.bytes_per_node_after_lists",
     "smaller", None),
    ("register_rate", "registration rate, KOLE / upstream",
     "peer.kole.register_per_second", "peer.upstream.register_per_second", "larger", 50),
    ("heartbeat_rate", "sustained heartbeat rate, KOLE / upstream",
     "peer.kole.heartbeats_per_second", "peer.upstream.heartbeats_per_second", "larger", 50),
    ("list_time", "kubectl get time (pages of 500), upstream / KOLE",
     "peer.kole.list_seconds", "peer.upstream.list_seconds", "smaller", None),
    ("list_unpaged_time", "kubectl get --chunk-size=0 time, upstream / KOLE",
     "peer.kole.list_unpaged_seconds", "peer.upstream.list_unpaged_seconds", "smaller", None),
    ("get_p99", "GET p99 under heartbeat load, upstream / KOLE (aggregated)",
     "peer.kole.get_p99_ms", "peer.upstream.get_p99_ms", "smaller", None),
]


def read(path):
    figures = {}
    for line in open(path):
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "figure":
            figures[parts[1]] = float(parts[2])
    return figures


def sizes(figures, prefix):
    found = set()
    for name in figures:
        m = re.fullmatch(re.escape(prefix) + r"_(\d+)", name)
        if m:
            found.add(int(m.group(1)))
    return sorted(found)


def main():
    figures_path, plot_path = sys.argv[1], sys.argv[2]
    f = read(figures_path)
    both = [n for n in sizes(f, "peer.upstream.bytes_per_node")
            if f"peer.kole.bytes_per_node_{n}" in f]
    lines, rows = [], []
    for name, label, kole, upstream, better, goal in RATIOS:
        for n in both:
            u = f.get(f"{upstream}_{n}")
            if kole is None:
                k = f.get(f"peer.kole.bytes_per_node_{n}", 0) + \
                    f.get(f"peer.kole.mosquitto_bytes_per_node_{n}", 0)
            else:
                k = f.get(f"{kole}_{n}")
            if u is None or k is None or (u if better == "larger" else k) <= 0:
                ratio = float("nan")
            else:
                ratio = u / k if better == "smaller" else k / u
            lines.append(f"figure peer.ratio.{name}_{n} {ratio:.6g} x")
            verdict = "" if goal is None else ("met" if ratio >= goal else "not met")
            rows.append((label, n, ratio, f">= {goal}x" if goal else "", verdict))
    # Memory per node between two sizes: the growth of the servers' resident
    # sets from the smaller fleet to the larger, divided by the added nodes,
    # which leaves out what both sides spend whatever the fleet (Go and C++
    # runtimes, caches, buffers).
    for small, large in zip(both, both[1:]):
        def grown(names):
            return sum(f.get(f"{m}_{large}", 0) - f.get(f"{m}_{small}", 0) for m in names)
        u = grown(["peer.upstream.etcd_rss", "peer.upstream.kube_apiserver_rss"])
        k = grown(["peer.kole.kole_apiserver_rss"])
        added = large - small
        lines.append(f"figure peer.upstream.marginal_bytes_per_node_{large} {u / added:.6g} B")
        lines.append(f"figure peer.kole.marginal_bytes_per_node_{large} {k / added:.6g} B")
        ratio = u / k if k > 0 else float("nan")
        lines.append(f"figure peer.ratio.memory_per_added_node_{large} {ratio:.6g} x")
        rows.append((f"memory per node added from {small}, upstream / KOLE", large, ratio,
                     ">= 100x", "met" if ratio >= 100 else "not met"))
    with open(figures_path, "a") as out:
        for line in lines:
            print(line)
            out.write(line + "\n")

    print()
    print(f"{'ratio (above 1: KOLE better)':62} {'nodes':>8} {'ratio':>10}  goal")
    for label, n, ratio, goal, verdict in rows:
        shown = f"{ratio:>9.1f}x" if ratio == ratio else f"{'n/a':>10}"
        print(f"{label:62} {n:>8} {shown}  {goal} {verdict if ratio == ratio else ''}")

    alone = [n for n in sizes(f, "peer.kole.bytes_per_node") if n not in both]
    for n in alone:
        print(f"\nKOLE alone at {n} nodes (no upstream run at this size):")
        for name, unit, label in [
            ("bytes_per_node", "B", "kole-apiserver resident bytes per node"),
            ("mosquitto_bytes_per_node", "B", "mosquitto resident bytes per node"),
            ("register_per_second", "nodes/s", "registration, durable and acknowledged"),
            ("heartbeats_per_second", "heartbeats/s", "sustained heartbeats through mosquitto"),
            ("list_seconds", "s", "kubectl get nodes.edge.kole.io through the aggregator"),
            ("get_p99_ms", "ms", "GET p99 through the aggregator, heartbeats flowing"),
        ]:
            value = f.get(f"peer.kole.{name}_{n}")
            if value is not None:
                print(f"  {label:58} {value:>14,.1f} {unit}")

    plot(f, plot_path)
    print(f"\nplot: {plot_path}")


def plot(f, path):
    fig, (mem, lst) = plt.subplots(1, 2, figsize=(11, 4.2))
    up = sizes(f, "peer.upstream.bytes_per_node")
    ko = sizes(f, "peer.kole.bytes_per_node")
    series = [
        (mem, up, "peer.upstream.bytes_per_node", "kube-apiserver + etcd", "o-", "tab:red"),
        (mem, ko, "peer.kole.bytes_per_node", "kole-apiserver", "s-", "tab:blue"),
        (mem, ko, "peer.kole.mosquitto_bytes_per_node", "mosquitto (KOLE's broker)", "s--",
         "tab:cyan"),
        (lst, sizes(f, "peer.upstream.list_seconds"), "peer.upstream.list_seconds",
         "kubectl get nodes (kube-apiserver)", "o-", "tab:red"),
        (lst, sizes(f, "peer.kole.list_seconds"), "peer.kole.list_seconds",
         "kubectl get nodes.edge.kole.io (aggregated)", "s-", "tab:blue"),
        (lst, sizes(f, "peer.upstream.list_unpaged_seconds"), "peer.upstream.list_unpaged_seconds",
         "... --chunk-size=0 (kube-apiserver)", "o:", "tab:red"),
        (lst, sizes(f, "peer.kole.list_unpaged_seconds"), "peer.kole.list_unpaged_seconds",
         "... --chunk-size=0 (aggregated KOLE)", "s:", "tab:blue"),
    ]
    for ax, ns, name, label, style, color in series:
        points = [(n, f[f"{name}_{n}"]) for n in ns if f.get(f"{name}_{n}", 0) > 0]
        if points:
            ax.plot(*zip(*points), style, color=color, label=label)
    mem.set(xscale="log", yscale="log", xlabel="nodes", ylabel="resident bytes per node",
            title="Memory per node")
    lst.set(xscale="log", yscale="log", xlabel="nodes", ylabel="seconds",
            title="Full kubectl get")
    for ax in (mem, lst):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("KOLE vs kube-apiserver + etcd, same seeded fleet, same machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
