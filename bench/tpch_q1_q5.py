"""TPC-H Q1 and Q5 on Ray Data: the workload behind the built-in ``tpch-q1-q5`` trace.

    tpchgen-cli parquet -s 0.5 --parts=32 --output-dir=/tmp/tpch/sf0.5-32
    rva trace record --num-cpus 8 -o autoscaler/traces/tpch-q1-q5.jsonl -- python bench/tpch_q1_q5.py /tmp/tpch/sf0.5-32

Recording needs ``tpchgen-cli``, ``pyarrow`` and ``pandas`` (``pip install tpchgen-cli pyarrow pandas``);
replaying the trace needs none of them. Q1 is the lineitem scan + filter + group-by aggregate. Q5 joins
lineitem with orders (date-filtered, via Ray Data), customers, suppliers, nations and the ASIA region
(small dimension tables broadcast to the map tasks) and sums revenue per nation.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data.aggregate import Count, Mean, Sum

BLOCKS = 32  # one read task per tpchgen-cli part (generate with --parts=32)


def _pandas(table: pa.Table) -> pd.DataFrame:
    """tpchgen-cli writes ``string_view`` columns, which pandas' Arrow-backed take cannot handle yet."""
    fields = [pa.field(f.name, pa.string()) if f.type == pa.string_view() else f for f in table.schema]
    return table.cast(pa.schema(fields)).to_pandas()


def q1(root: str) -> pd.DataFrame:
    cutoff = dt.date(1998, 12, 1) - dt.timedelta(days=90)

    def prepare(batch: pa.Table) -> pd.DataFrame:
        df = _pandas(batch)
        df = df[pd.to_datetime(df["l_shipdate"]).dt.date <= cutoff]
        price = df["l_extendedprice"].astype(float)
        disc = df["l_discount"].astype(float)
        tax = df["l_tax"].astype(float)
        return pd.DataFrame({
            "l_returnflag": df["l_returnflag"], "l_linestatus": df["l_linestatus"],
            "qty": df["l_quantity"].astype(float), "price": price, "disc": disc,
            "disc_price": price * (1 - disc), "charge": price * (1 - disc) * (1 + tax),
        })

    ds = ray.data.read_parquet(f"{root}/lineitem", override_num_blocks=BLOCKS)
    ds = ds.map_batches(prepare, batch_format="pyarrow")
    out = ds.groupby(["l_returnflag", "l_linestatus"]).aggregate(
        Sum("qty"), Sum("price"), Sum("disc_price"), Sum("charge"), Mean("qty"), Mean("price"), Mean("disc"),
        Count(),
    )
    return out.to_pandas().sort_values(["l_returnflag", "l_linestatus"])


def q5(root: str) -> pd.DataFrame:
    region = _pandas(pq.read_table(f"{root}/region"))
    nation = _pandas(pq.read_table(f"{root}/nation"))
    asia = nation.merge(region[region["r_name"] == "ASIA"], left_on="n_regionkey", right_on="r_regionkey")
    customer = _pandas(pq.read_table(f"{root}/customer", columns=["c_custkey", "c_nationkey"]))
    supplier = _pandas(pq.read_table(f"{root}/supplier", columns=["s_suppkey", "s_nationkey"]))
    lo, hi = dt.date(1994, 1, 1), dt.date(1995, 1, 1)

    def orders_in_year(batch: pa.Table) -> pd.DataFrame:
        df = _pandas(batch)
        d = pd.to_datetime(df["o_orderdate"]).dt.date
        return df[(d >= lo) & (d < hi)][["o_orderkey", "o_custkey"]]

    orders = ray.data.read_parquet(f"{root}/orders", override_num_blocks=BLOCKS)
    orders = orders.map_batches(orders_in_year, batch_format="pyarrow")
    cust_orders = orders.to_pandas().merge(customer, left_on="o_custkey", right_on="c_custkey")
    dims = ray.put((cust_orders[["o_orderkey", "c_nationkey"]], supplier, asia[["n_nationkey", "n_name"]]))

    def revenue(batch: pa.Table) -> pd.DataFrame:
        df = _pandas(batch)
        co, sup, nat = ray.get(dims)
        m = df[["l_orderkey", "l_suppkey", "l_extendedprice", "l_discount"]].merge(
            co, left_on="l_orderkey", right_on="o_orderkey")
        m = m.merge(sup, left_on="l_suppkey", right_on="s_suppkey")
        m = m[m["c_nationkey"] == m["s_nationkey"]].merge(nat, left_on="s_nationkey", right_on="n_nationkey")
        return pd.DataFrame({"n_name": m["n_name"],
                             "revenue": m["l_extendedprice"].astype(float) * (1 - m["l_discount"].astype(float))})

    ds = ray.data.read_parquet(f"{root}/lineitem", override_num_blocks=BLOCKS)
    ds = ds.map_batches(revenue, batch_format="pyarrow")
    return ds.groupby("n_name").sum("revenue").to_pandas().sort_values("sum(revenue)", ascending=False)


def main() -> None:
    root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/tpch/sf0.5-32"
    ray.init(log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    for name, query in (("Q1", q1), ("Q5", q5)):
        t0 = time.time()
        result = query(root)
        print(f"{name}: {len(result)} rows in {time.time() - t0:.1f} s")
        print(result.head(10).to_string())


if __name__ == "__main__":
    main()
