#!/usr/bin/env python3
"""Independent check of an anonymized table with pycanon (https://pypi.org/project/pycanon/).

Reads a CSV that `niji anonymize` wrote and measures, with pycanon and nothing of Niji's:
k (k-anonymity) over the quasi-identifier columns and, for each sensitive column, l
(distinct l-diversity). Prints the figures and exits non-zero when k is below --min-k or a
sensitive column's l is below --min-l.

  scripts/check_anonymized_with_pycanon.py OUT.csv --sep ';' \
      --qi age,education,marital-status,native-country,race,salary-class,sex,workclass \
      --sensitive occupation --min-k 5 --min-l 2

Every value is read as text (as Niji writes it), so pycanon groups exactly the released
strings. Requires pycanon (pinned in tests/python/requirements.txt).
"""

import argparse
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", help="the anonymized table (CSV with a header line)")
    p.add_argument("--sep", default=",", help="field separator (default ,)")
    p.add_argument("--qi", required=True, help="quasi-identifier columns, comma-separated")
    p.add_argument("--sensitive", default="", help="sensitive columns, comma-separated (l is measured for each)")
    p.add_argument("--min-k", type=int, default=None, help="fail when k is below this")
    p.add_argument("--min-l", type=int, default=None, help="fail when l of a sensitive column is below this")
    args = p.parse_args()

    import pandas as pd
    from pycanon import anonymity

    qi = [c for c in args.qi.split(",") if c]
    sensitive = [c for c in args.sensitive.split(",") if c]
    data = pd.read_csv(args.csv, sep=args.sep, dtype=str, keep_default_na=False)
    missing = [c for c in qi + sensitive if c not in data.columns]
    if missing:
        print(f"pycanon check: {args.csv}: no column {missing} (columns: {list(data.columns)})", file=sys.stderr)
        return 2
    if data.empty:
        print(f"pycanon check: {args.csv}: no rows", file=sys.stderr)
        return 1

    failures = []
    started = time.perf_counter()
    k = int(anonymity.k_anonymity(data, qi))
    line = f"pycanon check: {args.csv}: {len(data)} rows, k = {k}"
    if args.min_k is not None and k < args.min_k:
        failures.append(f"k = {k} < {args.min_k}")
    for s in sensitive:
        l_value = int(anonymity.l_diversity(data, qi, [s]))
        line += f", l({s}) = {l_value}"
        if args.min_l is not None and l_value < args.min_l:
            failures.append(f"l({s}) = {l_value} < {args.min_l}")
    line += f" ({time.perf_counter() - started:.1f} s)"
    print(line)
    if failures:
        print("pycanon check FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
