#!/usr/bin/env python3
"""Trains CatBoost models on generated data and writes, per model:
model.json (JSON export), test.csv (feature columns) and expected.csv
(predict_proba, or predict for regression, with repr() precision).

Used by tests/catboost.rs, which applies the same models with
`finopsia model eval` and compares every row within 1e-9.

Models:
  float_only   binary Logloss on float features with NaNs (nan_mode Min)
  ctr_combos   binary with categorical CTRs (Borders, Buckets, Counter) and
               feature combinations, long (>64 byte) and unicode values
  multiclass   5-class with one-hot + CTR features, NaNs as Max, and unseen
               categories in the test rows
  regression   RMSE over floats and categoricals
"""
import json
import os
import sys

import catboost
import numpy as np
import pandas as pd

out = sys.argv[1]
rng = np.random.default_rng(42)


def write(name, model, X_test, cat_cols, regression=False):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.save_model(os.path.join(d, "model.json"), format="json")
    X_test.to_csv(os.path.join(d, "test.csv"), index=False)
    if regression:
        pred = model.predict(X_test).reshape(-1, 1)
        cols = ["prediction"]
    else:
        pred = model.predict_proba(X_test)
        cols = [f"prob_{c}" for c in model.classes_]
    with open(os.path.join(d, "expected.csv"), "w") as f:
        f.write(",".join(cols) + "\n")
        for row in pred:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    j = json.load(open(os.path.join(d, "model.json")))
    ctrs = j["features_info"].get("ctrs", [])
    info = {
        "trees": len(j["oblivious_trees"]),
        "ctrs": len(ctrs),
        "combination_ctrs": sum(1 for c in ctrs if len(c["elements"]) > 1),
        "ctr_types": sorted({c["ctr_type"] for c in ctrs}),
        "one_hot": sum(1 for c in j["features_info"].get("categorical_features", []) if c.get("values")),
        "rows": len(X_test),
    }
    json.dump(info, open(os.path.join(d, "info.json"), "w"))
    print(name, info, file=sys.stderr)
    return info


def floats(n, k):
    return pd.DataFrame({f"f{i}": rng.normal(size=n) * (i + 1) for i in range(k)})


# 1. float only, binary, NaNs
n = 4000
X = floats(n, 6)
y = ((X.f0 + 0.5 * X.f1 ** 2 - X.f2 * X.f3 / 3 + rng.normal(size=n) * 0.3) > 0.5).astype(int)
X.loc[rng.uniform(size=n) < 0.07, "f0"] = np.nan
X.loc[rng.uniform(size=n) < 0.05, "f4"] = np.nan
m = catboost.CatBoostClassifier(iterations=120, depth=6, random_seed=1, verbose=0, thread_count=2, allow_writing_files=False)
m.fit(X[:3000], y[:3000])
info = write("float_only", m, X[3000:].reset_index(drop=True), [])
assert info["ctrs"] == 0

# 2. CTRs with combinations, long/unicode strings
n = 6000
long_vals = ["vendor-" + "x" * k + f"-{k}" for k in (10, 30, 60, 70, 130, 200)]
c1 = rng.choice(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"], size=n)
c2 = rng.choice([f"k{i}" for i in range(25)], size=n)
c3 = rng.choice(long_vals, size=n)
c4 = rng.choice(["Café", "Straße", "Москва", "東京", "naïve façade"], size=n)
X = pd.DataFrame({"f0": rng.normal(size=n), "c1": c1, "c2": c2, "c3": c3, "c4": c4, "f1": rng.uniform(size=n)})
inter = (pd.Series(c1).isin(["alpha", "gamma", "eta"]) ^ pd.Series(c2).str[1:].astype(int).mod(3).eq(0))
y = ((inter.astype(int) * 1.5 + (pd.Series(c3).str.len() > 70) + (X.f1 > 0.6) * (pd.Series(c4) == "Москва")
      + rng.normal(size=n) * 0.4) > 1.2).astype(int)
cats = ["c1", "c2", "c3", "c4"]
m = catboost.CatBoostClassifier(iterations=150, depth=6, random_seed=2, verbose=0, thread_count=2, allow_writing_files=False,
                                simple_ctr=["Borders", "Buckets", "Counter"],
                                combinations_ctr=["Borders", "Counter"], one_hot_max_size=1,
                                max_ctr_complexity=3)
m.fit(X[:4500], y[:4500], cat_features=cats)
Xt = X[4500:].reset_index(drop=True).copy()
Xt.loc[::17, "c2"] = "k_unseen"
info = write("ctr_combos", m, Xt, cats)
assert info["combination_ctrs"] > 0, "no feature combinations in the CTR model"

# 3. multiclass, one-hot + CTR, NaN as Max, unseen categories
n = 6000
X = pd.DataFrame({
    "amount": np.round(rng.lognormal(8, 1.5, size=n), 2),
    "direction": rng.choice(["inflow", "outflow"], size=n, p=[0.2, 0.8]),
    "account": rng.choice(["1", "2", "3"], size=n),
    "desc": rng.choice([f"payee {i}" for i in range(60)], size=n),
    "score": rng.normal(size=n),
})
X.loc[rng.uniform(size=n) < 0.06, "score"] = np.nan
payee = pd.Series(X.desc).str.split(" ").str[1].astype(int)
y = np.where(X.direction == "inflow", "revenue",
             np.where(payee % 4 == 0, "rent", np.where(payee % 4 == 1, "salaries",
                      np.where(X.amount > 5000, "inventory", "supplies"))))
cats = ["direction", "account", "desc"]
m = catboost.CatBoostClassifier(iterations=200, depth=6, random_seed=3, verbose=0, thread_count=2, allow_writing_files=False,
                                loss_function="MultiClass", nan_mode="Max", one_hot_max_size=4,
                                max_ctr_complexity=2)
m.fit(X[:5000], y[:5000], cat_features=cats)
Xt = X[5000:].reset_index(drop=True).copy()
Xt.loc[::5, "desc"] = [f"never seen {i}" for i in range(len(Xt.loc[::5]))]
Xt.loc[::11, "account"] = "9"
info = write("multiclass", m, Xt, cats)
assert info["one_hot"] > 0 and info["ctrs"] > 0

# 4. regression
n = 4000
X = pd.DataFrame({"f0": rng.normal(size=n), "f1": rng.uniform(size=n),
                  "c1": rng.choice(list("abcdefgh"), size=n), "c2": rng.choice(["p", "q", "r"], size=n)})
y = X.f0 * 2 + (X.c1.isin(list("abc"))) * 3 + (X.c2 == "q") * X.f1 + rng.normal(size=n) * 0.1
m = catboost.CatBoostRegressor(iterations=150, depth=5, random_seed=4, verbose=0, thread_count=2, allow_writing_files=False)
m.fit(X[:3000], y[:3000], cat_features=["c1", "c2"])
write("regression", m, X[3000:].reset_index(drop=True), ["c1", "c2"], regression=True)
print("catboost", catboost.__version__, file=sys.stderr)
