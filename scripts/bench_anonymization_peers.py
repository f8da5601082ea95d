#!/usr/bin/env python3
"""Peer benchmark of `niji anonymize` on Adult, k = 5 (run by scripts/bench-anonymization-peers).

Runs Niji (the release binary, as a whole process: CSV in, anonymize, CSV and report out) and
each peer installed from PyPI (anjana, anonypy) on Adult with k = 5 and 0% suppression, and
pycanon as the checker it is (k, l and t of Niji's output, beside Niji's own check of the same
properties, which `niji anonymize` reports). Prints one table: tool, time, ratio to Niji's time
in this run, k achieved, suppressed rows, information loss.

Loss is ARX's "Loss" (the metric Niji minimizes), computed here in Python from each output and
the hierarchy files, the same way for every tool: per quasi-identifier and record, the share of
the attribute's original values that the released value covers, scaled as (covered - 1) /
(D - 1) (a suppressed or removed record counts as fully generalized, 1); averaged over the
input's records; combined over attributes as (product of (1 + L_i))^(1/m) - 1. A released value
covers: the leaves under it when it is a hierarchy label (full-domain generalization: the level
of each column is the lowest level holding all its values); for anonypy's Mondrian output the
listed values ("a,b,c") or the ages within a range ("25-37"). Niji's own figure is printed
beside the Python one for Niji's output, which checks this implementation.

Peers are timed on their anonymization call alone (data already in memory), Niji as a whole
process start to finish, so the ratios favour the peers.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd


def version(package):
    try:
        from importlib.metadata import version as v

        return v(package)
    except Exception:
        return "?"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADULT = os.path.join(ROOT, "..", "shared", "datasets", "adult")
QIS = ["age", "education", "marital-status", "native-country", "race", "salary-class", "sex", "workclass"]
SENSITIVE = "occupation"
K = 5
TIMEOUT = int(os.environ.get("NIJI_PEER_TIMEOUT", "900"))
RUNS = int(os.environ.get("NIJI_BENCH_RUNS", "5"))


def load_hierarchy(qi):
    rows = pd.read_csv(os.path.join(ADULT, f"adult_hierarchy_{qi}.csv"), sep=";", header=None, dtype=str)
    return rows


class Domain:
    """Leaves covered by each label of each level of one hierarchy."""

    def __init__(self, rows):
        self.rows = rows
        self.size = len(rows)
        self.levels = [rows[c].value_counts().to_dict() for c in rows.columns]
        self.leaves = list(rows[0])

    def level_of(self, values):
        wanted = set(values)
        for level, labels in enumerate(self.levels):
            if wanted <= labels.keys():
                return level
        return None

    def covered(self, value, level):
        if level is not None:
            return self.levels[level][value]
        # Mondrian output: a range of numbers or a list of values.
        if "," in value:
            return len(set(value.split(",")))
        if "-" in value and all(p.strip().isdigit() for p in value.split("-", 1)):
            lo, hi = (int(p) for p in value.split("-", 1))
            return sum(1 for leaf in self.leaves if leaf.isdigit() and lo <= int(leaf) <= hi)
        return 1


def loss(output, domains, n_in):
    """ARX's Loss of a released table (rows removed by suppression count as fully generalized)."""
    suppressed = n_in - len(output)
    product = 1.0
    for qi in QIS:
        d = domains[qi]
        values = output[qi].astype(str)
        level = d.level_of(values.unique())
        counts = values.value_counts()
        total = sum(c * (d.covered(v, level) - 1) / (d.size - 1) for v, c in counts.items())
        total += suppressed * 1.0
        product *= 1.0 + total / n_in
    return product ** (1.0 / len(QIS)) - 1.0


def k_of(output):
    if len(output) == 0:
        return 0
    return int(output.groupby(QIS, observed=True).size().min())


class Timeout(Exception):
    pass


def with_timeout(f):
    def alarm(signum, frame):
        raise Timeout()

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT)
    try:
        started = time.perf_counter()
        result = f()
        return time.perf_counter() - started, result
    finally:
        signal.alarm(0)


def sensitive_config(config, out_dir):
    """A copy of an example configuration with occupation as a sensitive attribute (released
    unchanged, no model on it, so the same result), so that Niji's report checks l and t of
    occupation as pycanon does."""
    examples = os.path.join(ROOT, "examples", "adult")
    with open(os.path.join(examples, config)) as f:
        text = f.read()
    text = text.replace('hierarchy = "', 'hierarchy = "' + examples + "/")
    text = text.replace('column = "occupation"\nrole = "insensitive"', 'column = "occupation"\nrole = "sensitive"')
    path = os.path.join(out_dir, "sensitive-" + config)
    with open(path, "w") as f:
        f.write(text)
    return path


def run_niji(niji, data_path, out_dir, config="config.toml", runs=RUNS):
    out = os.path.join(out_dir, os.path.basename(config) + ".csv")
    report = os.path.join(out_dir, os.path.basename(config) + ".json")
    cmd = [niji, "anonymize", "--config", os.path.join(ROOT, "examples", "adult", config), data_path, "-o", out, "--report", report]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    with open(report) as f:
        rep = json.load(f)
    return statistics.median(times), pd.read_csv(out, sep=";", dtype=str, keep_default_na=False), rep


def run_anjana(data, hierarchies):
    from anjana.anonymity import k_anonymity

    h = {qi: dict(hierarchies[qi]) for qi in QIS}
    return with_timeout(lambda: k_anonymity(data.copy(), [], QIS, K, 0, h))


def run_anonypy(data):
    from anonypy import anonypy

    df = data.copy()
    df["age"] = df["age"].astype(int)
    for qi in QIS[1:] + [SENSITIVE]:
        df[qi] = df[qi].astype("category")

    def go():
        rows = anonypy.Preserver(df, QIS, SENSITIVE).anonymize_k_anonymity(k=K)
        expanded = [r for r in rows for _ in range(int(r["count"]))]
        out = pd.DataFrame(expanded).drop(columns=["count"])
        for qi in QIS:
            # anonypy puts each generalized value in a one-element list.
            out[qi] = out[qi].map(lambda v: v[0] if isinstance(v, list) else v).astype(str)
        return out

    return with_timeout(go)


def run_pycanon(output):
    from pycanon import anonymity

    def go():
        k = anonymity.k_anonymity(output, QIS)
        l_value = anonymity.l_diversity(output, QIS, [SENSITIVE])
        t = anonymity.t_closeness(output, QIS, [SENSITIVE])
        return k, l_value, t

    return with_timeout(go)


def main():
    niji = sys.argv[1]
    available = set(sys.argv[2].split(",")) if len(sys.argv) > 2 and sys.argv[2] else set()
    data_path = os.path.join(ADULT, "adult.csv")
    data = pd.read_csv(data_path, sep=";", dtype=str, keep_default_na=False)
    n = len(data)
    hierarchies = {qi: load_hierarchy(qi) for qi in QIS}
    domains = {qi: Domain(hierarchies[qi]) for qi in QIS}
    rows = []
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        niji_time, niji_out, report = run_niji(niji, data_path, tmp)
        niji_loss = loss(niji_out, domains, n)
        rows.append(("niji anonymize (release, whole process)", niji_time, k_of(niji_out), n - len(niji_out), niji_loss))
        notes.append(f"Niji's own Loss {report['information_loss']['value']:.4f}, computed here {niji_loss:.4f}")
        for package, what, runner in [
            ("anjana", "k_anonymity, same hierarchies", lambda: run_anjana(data, hierarchies)),
            ("anonypy", "Mondrian, no hierarchies", lambda: run_anonypy(data)),
        ]:
            name = f"{package} {version(package)} ({what})"
            if package not in available:
                notes.append(f"{package}: skipped (could not be installed here)")
                continue
            try:
                elapsed, out = runner()
                if out is None or len(out) == 0:
                    notes.append(f"{package}: returned no table")
                    rows.append((name, elapsed, 0, n, float("nan")))
                    continue
                rows.append((name, elapsed, k_of(out), n - len(out), loss(out, domains, n)))
            except Timeout:
                notes.append(f"{package}: skipped (no result within {TIMEOUT} s)")
            except Exception as e:  # a peer failing must not hide the others
                notes.append(f"{package}: failed: {type(e).__name__}: {e}")
        checks = []
        if "pycanon" in available:
            for label, config in [("0% suppression", "config.toml"), ("5% suppression", "config-suppression-5.toml")]:
                _, table, rep = run_niji(niji, data_path, tmp, sensitive_config(config, tmp), runs=1)
                try:
                    elapsed, (k, l_value, t) = run_pycanon(table)
                    ours = rep["check"]["elapsed_ms"] / 1e3
                    checks.append((label, rep["check"]["classes"], elapsed, ours, int(k), int(l_value), t, rep["check"]))
                except Timeout:
                    notes.append(f"pycanon: skipped (no result within {TIMEOUT} s)")
        else:
            notes.append("pycanon: skipped (could not be installed here)")

    print(f"Adult ({n} rows), 8 quasi-identifiers, k = {K}, 0% suppression; Niji: median of {RUNS} runs")
    print()
    print(f"| {'tool':<44} | {'time':>9} | {'× Niji':>8} | {'k':>3} | {'suppressed':>10} | {'Loss':>6} |")
    print(f"|{'-' * 46}|{'-' * 11}|{'-' * 10}|{'-' * 5}|{'-' * 12}|{'-' * 8}|")
    for name, elapsed, k, suppressed, value in rows:
        loss_text = "–" if value != value else f"{value:.3f}"
        print(f"| {name:<44} | {elapsed * 1e3:>7.0f}ms | {elapsed / niji_time:>8.1f} | {k:>3} | {suppressed:>10} | {loss_text:>6} |")
    if checks:
        print()
        print(f"Checking Niji's outputs: pycanon's k_anonymity + l_diversity + t_closeness ({SENSITIVE}) beside Niji's check_release")
        print("(k, distinct/entropy/recursive l, t equal; reported by `niji anonymize` in its report):")
        print()
        print(f"| {'output':<16} | {'classes':>7} | {'pycanon':>9} | {'Niji':>8} | {'pycanon / Niji':>14} | k, l, t (pycanon) | k, l, t (Niji) |")
        print(f"|{'-' * 18}|{'-' * 9}|{'-' * 11}|{'-' * 10}|{'-' * 16}|{'-' * 19}|{'-' * 16}|")
        for label, classes, theirs, ours, k, l_value, t, c in checks:
            s = c["sensitive"][0] if c["sensitive"] else None
            niji_klt = f"{c['k']}, -, -" if s is None else f"{c['k']}, {s['distinct_l']}, {s['t_equal']:.3f}"
            print(f"| {label:<16} | {classes:>7} | {theirs * 1e3:>7.0f}ms | {ours * 1e3:>6.2f}ms | {theirs / ours:>13.0f}× | {f'{k}, {l_value}, {t:.3f}':<17} | {niji_klt:<14} |")
    print()
    for note in notes:
        print("- " + note)


if __name__ == "__main__":
    main()
