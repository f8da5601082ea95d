"""DuckDB's side of `cargo bench -p niji-sandbox --bench duckdb`.

Usage: duckdb_suite.py DIR RUNS THREADS SQL...
Loads DIR/{claim_lines,patients,conditions}.parquet into in-memory tables, runs each SQL once
to warm up and then RUNS times, and prints on one line the load time and each query's median
time, in seconds.
"""
import statistics
import sys
import time

import duckdb


def main() -> None:
    folder, runs, threads, queries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads TO {threads}")
    start = time.perf_counter()
    for table in ("claim_lines", "patients", "conditions"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{folder}/{table}.parquet')")
    load = time.perf_counter() - start
    medians = []
    for sql in queries:
        con.execute(sql).fetchall()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    print(" ".join(f"{t:.6f}" for t in [load, *medians]))


if __name__ == "__main__":
    main()
