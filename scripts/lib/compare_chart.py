"""Renders scripts/bench-compare's summary (JSON on stdin) as a PNG: deliveries/s and p99 at
the highest rate against subscriber count, and memory per connection."""

import json
import sys

if any(a in ("-h", "--help") for a in sys.argv[1:]):
    print(__doc__.strip())
    print("\nUsage: python3 scripts/lib/compare_chart.py OUT.png < SUMMARY.json (needs matplotlib)")
    sys.exit(0)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(sys.stdin)
summary, servers, sizes = data["summary"], data["servers"], data["sizes"]
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))


def med(s):
    return s["median"] if s else None


def err(s):
    return [[s["median"] - s["min"]], [s["max"] - s["median"]]] if s else [[0], [0]]


for name in servers:
    xs = [size for size in sizes if med(summary[str(size)][name]["best_deliveries_per_s"]) is not None]
    ys = [med(summary[str(x)][name]["best_deliveries_per_s"]) for x in xs]
    ax1.plot(xs, ys, marker="o", label=name)
    top_rate = max(summary[str(sizes[0])][name]["p99_ms_by_rate"], key=float)
    xs = [size for size in sizes if med(summary[str(size)][name]["p99_ms_by_rate"][top_rate])]
    ys = [med(summary[str(x)][name]["p99_ms_by_rate"][top_rate]) for x in xs]
    ax2.plot(xs, ys, marker="o", label=f"{name} ({float(top_rate):g} ev/s)")

ax1.set(title="best deliveries/s (1 channel)", xlabel="subscribers", ylabel="deliveries/s")
ax2.set(title="p99 publish→delivery at the highest rate", xlabel="subscribers", ylabel="ms")
ax2.set_yscale("log")
largest = str(sizes[-1])
mem = [med(summary[largest][n]["rss_per_connection_kib"]) or 0 for n in servers]
bars = ax3.bar(servers, mem, color=["tab:blue", "tab:orange"])
ax3.bar_label(bars, fmt="%.1f")
ax3.set(title=f"RSS per subscribed connection ({largest})", ylabel="KiB")
for ax in (ax1, ax2):
    ax.grid(True, alpha=0.3)
    ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[1], dpi=110)
