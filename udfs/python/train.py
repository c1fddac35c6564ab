#!/usr/bin/env python3
"""Train a FinOpsia categorization model with CatBoost (run by `finopsia train`).

Input: a CSV exported by `finopsia train` with columns
  source, transaction_id, description, amount_minor, currency,
  currency_exponent, direction, account_id, label, label_source
Output (in --out-dir): model.json (CatBoost JSON export) and metadata.json.

The holdout split is stratified and seeded; metrics are those of the shipped
model on rows it never saw. Exit status 2 with a message for unusable input
(too few rows or classes).
"""
import argparse
import csv
import datetime
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import finopsia_features as ff  # noqa: E402


def fail(msg):
    print(f"train.py: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=-1)
    p.add_argument("--no-unseen-eval", dest="unseen_eval", action="store_false",
                   help="skip the extra model that measures accuracy on unseen descriptions")
    a = p.parse_args()

    import catboost
    import numpy as np
    import pandas as pd

    t0 = time.time()
    with open(a.input, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    need = {"source", "transaction_id", "description", "amount_minor", "currency_exponent",
            "direction", "account_id", "label"}
    if rows and not need.issubset(rows[0].keys()):
        fail(f"input lacks columns {sorted(need - set(rows[0].keys()))}")
    rows = [r for r in rows if (r.get("label") or "").strip()]
    if len(rows) < 20:
        fail(f"only {len(rows)} labelled rows; need at least 20")
    rows.sort(key=lambda r: (r["source"], r["transaction_id"]))
    labels = [r["label"].strip() for r in rows]
    classes = sorted(set(labels))
    if len(classes) < 2:
        fail(f"need at least two categories, found {classes}")

    fp = hashlib.sha256()
    for r, lab in zip(rows, labels):
        fp.update("\x1f".join([r["source"], r["transaction_id"], r["description"], r["amount_minor"],
                               r["currency_exponent"], r["direction"], r["account_id"], lab]).encode())
        fp.update(b"\x1e")
    fingerprint = fp.hexdigest()

    X = pd.DataFrame(
        [ff.features_of(r["description"], r["amount_minor"], r["currency_exponent"], r["direction"], r["account_id"])
         for r in rows],
        columns=ff.FEATURES,
    )
    y = np.array(labels)

    # Stratified holdout: every class with >= 2 rows has at least one held out.
    rng = np.random.default_rng(a.seed)
    test_idx = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * a.holdout))
        if len(idx) >= 2:
            k = max(1, min(k, len(idx) - 1))
        else:
            k = 0
        test_idx.extend(idx[:k].tolist())
    test_mask = np.zeros(len(y), dtype=bool)
    test_mask[test_idx] = True
    X_train, y_train = X[~test_mask], y[~test_mask]
    X_test, y_test = X[test_mask], y[test_mask]

    params = dict(loss_function="MultiClass", iterations=a.iterations, depth=a.depth,
                  random_seed=a.seed, verbose=0, thread_count=a.threads, allow_writing_files=False)
    if a.learning_rate:
        params["learning_rate"] = a.learning_rate
    print(f"train.py: {len(y)} labelled rows, {len(classes)} categories; training on "
          f"{int((~test_mask).sum())}, holding out {int(test_mask.sum())}", file=sys.stderr, flush=True)
    model = catboost.CatBoostClassifier(**params)
    model.fit(X_train, y_train, cat_features=ff.CAT_FEATURES,
              verbose=max(1, a.iterations // 5), log_cout=sys.stderr, log_cerr=sys.stderr)

    # Generalization to descriptions never seen in training: a second model
    # with the same parameters, holding out whole normalized descriptions.
    unseen = None
    if a.unseen_eval:
        descs = sorted(set(X["desc"]))
        rng2 = np.random.default_rng(a.seed + 1)
        held = set(rng2.choice(descs, size=max(1, int(len(descs) * a.holdout)), replace=False).tolist())
        m2 = X["desc"].isin(held).to_numpy()
        if 0 < m2.sum() < len(y) and len(set(y[~m2])) >= 2:
            print(f"train.py: measuring accuracy on {len(held)} unseen descriptions "
                  "(a second model; --no-unseen-eval skips it)", file=sys.stderr, flush=True)
            model2 = catboost.CatBoostClassifier(**params)
            model2.fit(X[~m2], y[~m2], cat_features=ff.CAT_FEATURES)
            p2 = model2.predict(X[m2]).reshape(-1)
            unseen = {"accuracy": float((p2 == y[m2]).mean()), "rows": int(m2.sum()),
                      "descriptions": len(held)}

    pred = model.predict(X_test).reshape(-1) if len(X_test) else np.array([])
    accuracy = float((pred == y_test).mean()) if len(y_test) else None
    per_class = {}
    for c in classes:
        tp = int(((pred == c) & (y_test == c)).sum())
        fp_ = int(((pred == c) & (y_test != c)).sum())
        fn = int(((pred != c) & (y_test == c)).sum())
        prec = tp / (tp + fp_) if tp + fp_ else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        per_class[c] = {
            "f1": (2 * prec * rec / (prec + rec)) if prec + rec else 0.0,
            "precision": prec, "recall": rec, "support": int((y_test == c).sum()),
        }

    os.makedirs(a.out_dir, exist_ok=True)
    model.save_model(os.path.join(a.out_dir, "model.json"), format="json")
    label_sources = {}
    for r in rows:
        s = r.get("label_source") or "input"
        label_sources[s] = label_sources.get(s, 0) + 1
    meta = {
        "version": a.version,
        "created_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "catboost_version": catboost.__version__,
        "loss_function": "MultiClass",
        "classes": [str(c) for c in model.classes_],
        "features": [{"name": n, "kind": "float" if n in ff.FLOAT_FEATURES else "categorical"} for n in ff.FEATURES],
        "normalization": "finopsia-text-v1 (udfs/core/src/text.rs)",
        "params": {k: v for k, v in params.items() if k not in ("verbose", "thread_count", "allow_writing_files")},
        "training": {
            "rows": int(len(y)), "train_rows": int((~test_mask).sum()), "holdout_rows": int(test_mask.sum()),
            "label_sources": label_sources, "fingerprint": "sha256:" + fingerprint,
            "seconds": round(time.time() - t0, 2),
        },
        "holdout": {
            "accuracy": accuracy,
            "macro_f1": (sum(v["f1"] for v in per_class.values()) / len(per_class)) if per_class else None,
            "per_class": per_class,
            "unseen_descriptions": unseen,
        },
    }
    with open(os.path.join(a.out_dir, "metadata.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps({"version": a.version, "rows": len(y), "holdout_accuracy": accuracy,
                      "macro_f1": meta["holdout"]["macro_f1"],
                      "unseen_description_accuracy": unseen and unseen["accuracy"]}))


if __name__ == "__main__":
    main()
