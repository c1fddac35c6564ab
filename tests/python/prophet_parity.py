"""Reference forecasts from Python Prophet (PyPI `prophet`) for the parity test.

usage: prophet_parity.py [--perturb] SERIES.csv HORIZON OUT.csv [HOLIDAYS.csv]

Fits Prophet with its defaults on a `ds,y` CSV (plus a holidays frame if
given) and writes `ds,yhat,yhat_lower,yhat_upper` for the HORIZON days after
the last date, like `finopsia forecast --input`. Also prints the fit+predict
time in milliseconds on stdout.

--perturb multiplies every y by (1 + 1e-12 * N(0, 1)) first (fixed seed): how
far Prophet's own answer moves under a perturbation at the level of rounding
shows how well the fit is determined (its optimizer's noise floor).
"""
import logging
import sys
import time

import numpy as np
import pandas as pd

logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
logging.getLogger("prophet").setLevel(logging.WARNING)
from prophet import Prophet  # noqa: E402


def main():
    args = sys.argv[1:]
    perturb = args[0] == "--perturb"
    if perturb:
        args = args[1:]
    series_path, horizon, out_path = args[0], int(args[1]), args[2]
    holidays = None
    if len(args) > 3:
        holidays = pd.read_csv(args[3], parse_dates=["ds"])
    df = pd.read_csv(series_path, parse_dates=["ds"])
    if perturb:
        noise = np.random.default_rng(12345).standard_normal(len(df))
        df["y"] = df["y"] * (1 + 1e-12 * noise)
    started = time.perf_counter()
    m = Prophet(holidays=holidays)
    m.fit(df)
    future = m.make_future_dataframe(periods=horizon, include_history=False)
    fc = m.predict(future)
    elapsed_ms = (time.perf_counter() - started) * 1000
    fc["ds"] = fc["ds"].dt.strftime("%Y-%m-%d")
    fc[["ds", "yhat", "yhat_lower", "yhat_upper"]].to_csv(out_path, index=False, float_format="%.17g")
    print(f"{elapsed_ms:.3f}")


if __name__ == "__main__":
    main()
