#!/usr/bin/python3
"""plot-timeline.py - draws a `memgrp run --record` CSV: usage against the limit, with the events marked.

Usage: scripts/plot-timeline.py FILE [-o OUT.png] [--title TEXT]

FILE is the CSV `memgrp run --record FILE` wrote (docs/design.md, "A
timeline of a run", describes its columns). OUT defaults to FILE with its
extension replaced by .png. The interpreter is Debian's /usr/bin/python3, where
python3-matplotlib installs (another python3 first on PATH, such as a
pyenv one, has no matplotlib). A last row cut short (a run killed while it
wrote) is left out with a warning; any other bad row is an error naming its
line. Needs matplotlib (Debian: python3-matplotlib).

Exit status: 0 drawn, 1 cannot write OUT or no matplotlib, 2 bad input.
"""

import argparse
import csv
import os
import sys

# The columns the drawing needs; the CSV may have more (later versions).
NEEDED = ("time_s", "usage", "limit", "swap_usage", "evicted_pages", "coop_requests",
          "coop_freed", "oom_kills", "events")
MIB = 1024.0 * 1024.0


class BadInput(Exception):
    pass


def read_rows(path):
    """The rows as dicts of numbers (limit None when unlimited) and an events list."""
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise BadInput("cannot read %s: %s" % (path, e.strerror or e))
    except UnicodeDecodeError:
        raise BadInput("%s: not a text file (is it a memgrp run --record CSV?)" % path)
    if not text.strip():
        raise BadInput("%s is empty (no header: is it a memgrp run --record CSV?)" % path)
    lines = text.split("\n")
    cut = not text.endswith("\n")  # the last line was being written
    reader = csv.reader(lines)
    header = next(reader)
    missing = [c for c in NEEDED if c not in header]
    if missing:
        raise BadInput("%s line 1: not a memgrp run --record header (missing %s)"
                       % (path, ", ".join(missing)))
    col = {name: i for i, name in enumerate(header)}
    rows = []
    for lineno, fields in enumerate(reader, start=2):
        if not fields:
            continue
        last = lineno == len(lines)
        if len(fields) != len(header):
            if cut and last:
                print("plot-timeline: %s line %d is cut short (the run was killed while "
                      "writing it): left out" % (path, lineno), file=sys.stderr)
                continue
            raise BadInput("%s line %d: %d fields, the header has %d"
                           % (path, lineno, len(fields), len(header)))
        row = {}
        for name in NEEDED:
            v = fields[col[name]]
            if name == "events":
                row[name] = [e for e in v.split(";") if e]
                continue
            if name == "limit" and v == "":
                row[name] = None  # no limit
                continue
            try:
                row[name] = float(v)
            except ValueError:
                if cut and last:
                    row = None
                    break
                raise BadInput("%s line %d: %s is '%s', not a number" % (path, lineno, name, v))
            if row[name] < 0:
                raise BadInput("%s line %d: %s is negative (%s)" % (path, lineno, name, v))
        if row is None:
            print("plot-timeline: %s line %d is cut short: left out" % (path, lineno),
                  file=sys.stderr)
            continue
        if rows and row["time_s"] < rows[-1]["time_s"]:
            raise BadInput("%s line %d: time_s goes back (%g after %g)"
                           % (path, lineno, row["time_s"], rows[-1]["time_s"]))
        rows.append(row)
    if not rows:
        raise BadInput("%s has a header but no rows" % path)
    return rows


def event_count(word):
    """'evict*3' -> ('evict', 3)."""
    name, _, n = word.partition("*")
    try:
        return name, int(n) if n else 1
    except ValueError:
        return name, 1


def draw(rows, out, title):
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot-timeline: %s has no matplotlib (Debian: apt-get install "
              "python3-matplotlib, then run this script with /usr/bin/python3)" % sys.executable,
              file=sys.stderr)
        return 1
    t = [r["time_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=100)
    ax.plot(t, [r["usage"] / MIB for r in rows], color="tab:blue", lw=1.8, label="usage")
    # the limit may change during a run (memgrp set); None: no limit then
    lim = [r["limit"] / MIB if r["limit"] is not None else float("nan") for r in rows]
    if any(r["limit"] is not None for r in rows):
        ax.plot(t, lim, color="black", ls="--", lw=1.2, label="limit", drawstyle="steps-post")
    if any(r["swap_usage"] for r in rows):
        ax.plot(t, [r["swap_usage"] / MIB for r in rows], color="tab:purple", lw=1.2,
                label="swap (compressed store)")
    marks = {  # event: (colour, marker, label)
        "evict": ("tab:orange", "v", "evictions"),
        "coop_request": ("tab:green", "o", "cooperator asked"),
        "oom_kill": ("tab:red", "X", "OOM kill"),
        "pressure_low": ("gold", "^", "pressure low (75%)"),
        "pressure_medium": ("darkorange", "^", "pressure medium (90%)"),
        "pressure_critical": ("firebrick", "^", "pressure critical (98%)"),
    }
    for name, (colour, marker, label) in marks.items():
        xs, ys = [], []
        for r in rows:
            for word in r["events"]:
                if event_count(word)[0] == name:
                    xs.append(r["time_s"])
                    ys.append(r["usage"] / MIB)
        if not xs:
            continue
        if name == "oom_kill":
            for x in xs:
                ax.axvline(x, color=colour, lw=1, alpha=0.6)
        ax.scatter(xs, ys, color=colour, marker=marker, s=60 if name == "oom_kill" else 30,
                   zorder=3, label=label)
    # --record-threshold crossings: the threshold's line, each crossing on it
    crossed = {}
    for r in rows:
        for word in r["events"]:
            name = event_count(word)[0]
            if name.startswith("threshold_") and name[10:].isdigit():
                crossed.setdefault(int(name[10:]), []).append(r["time_s"])
    for k, (bytes_, xs) in enumerate(sorted(crossed.items())):
        ax.axhline(bytes_ / MIB, color="tab:cyan", ls=":", lw=1)
        ax.scatter(xs, [bytes_ / MIB] * len(xs), color="tab:cyan", marker="D", s=25, zorder=3,
                   label="threshold crossed" if k == 0 else None)
    freed = sum(r["coop_freed"] for r in rows)
    evicted = sum(r["evicted_pages"] for r in rows)
    kills = sum(r["oom_kills"] for r in rows)
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel("MiB")
    top = max([r["usage"] for r in rows] + [r["limit"] or 0 for r in rows]
              + [r["swap_usage"] for r in rows]) / MIB
    ax.set_ylim(0, top * 1.1 if top > 0 else 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "memgrp run: %d evicted pages, %d OOM kill(s), %.1f MiB freed by "
                 "cooperators" % (evicted, kills, freed / MIB), fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    try:
        fig.savefig(out)
    except OSError as e:
        print("plot-timeline: cannot write %s: %s" % (out, e.strerror or e), file=sys.stderr)
        return 1
    print("plot-timeline: %s (%d rows)" % (out, len(rows)))
    return 0


def main():
    ap = argparse.ArgumentParser(description="Draws a memgrp run --record CSV as a PNG.")
    ap.add_argument("file", help="the CSV memgrp run --record wrote")
    ap.add_argument("-o", "--output", help="the PNG to write (default: FILE with .png)")
    ap.add_argument("--title", help="the picture's title (default: the run's totals)")
    args = ap.parse_args()
    out = args.output or os.path.splitext(args.file)[0] + ".png"
    if os.path.abspath(out) == os.path.abspath(args.file):
        print("plot-timeline: the output would overwrite %s" % args.file, file=sys.stderr)
        return 2
    try:
        rows = read_rows(args.file)
    except BadInput as e:
        print("plot-timeline: %s" % e, file=sys.stderr)
        return 2
    return draw(rows, out, args.title)


if __name__ == "__main__":
    sys.exit(main())
