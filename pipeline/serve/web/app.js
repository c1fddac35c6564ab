// FinOpsia dashboard: reads and writes only through the REST API (/api/v1)
// with the session cookie. Money arrives in integer minor units and is kept
// as BigInt (exact), formatted with Intl from a decimal string, never
// through a float; charts plot floats (a picture, not a figure).
//
// What each chart and table shows is also kept in window.FinOpsia (the
// browser tests compare it with the API's numbers).
(() => {
  'use strict';

  const $ = (sel) => document.querySelector(sel);
  const meta = (n) => document.querySelector(`meta[name="${n}"]`).content;
  const S = {
    role: meta('finopsia-role'),
    name: meta('finopsia-name'),
    csrf: meta('csrf-token'),
    view: null,
    seq: null,
    forecastRuns: null,
    lastDay: null,
    status: null,
    prevSources: null,
    rates: {},
    plots: {},
    categories: new Set(),
  };
  const F = (window.FinOpsia = { charts: {}, tables: {}, loaded: {}, updates: 0 });
  const ROLES = { read: 1, ingest: 2, admin: 3 };
  const can = (role) => (ROLES[S.role] || 0) >= ROLES[role];

  // ------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // Integers named *_minor become BigInt from their exact source text.
  function reviver(key, value, ctx) {
    if (typeof value === 'number' && /_minor$/.test(key) && ctx && ctx.source !== undefined) {
      return BigInt(ctx.source);
    }
    return value;
  }

  async function api(path, opts = {}) {
    const headers = { Accept: 'application/json' };
    const init = { method: opts.method || 'GET', headers, credentials: 'same-origin' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    if (init.method !== 'GET') headers['X-CSRF-Token'] = S.csrf;
    const r = await fetch(path, init);
    const text = await r.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text, reviver);
      } catch (e) {
        data = null;
      }
    }
    if (r.status === 401) {
      showLogin('Your session has ended: log in again.');
      throw new ApiError(401, 'unauthorized', 'not logged in');
    }
    if (!r.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(r.status, err.code || String(r.status), err.message || `${r.status} ${r.statusText}`);
    }
    return data;
  }

  function qs(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, v);
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  // Every page of a cursor-paged list.
  async function allPages(path, params) {
    const items = [];
    let cursor = null;
    do {
      const r = await api(path + qs({ ...params, limit: 1000, cursor }));
      items.push(...r.items);
      cursor = r.next_cursor;
    } while (cursor);
    return items;
  }

  // ------------------------------------------------------------ money, dates

  const exponents = {};
  function exponent(cur) {
    if (!(cur in exponents)) {
      try {
        exponents[cur] = new Intl.NumberFormat('en', { style: 'currency', currency: cur }).resolvedOptions()
          .maximumFractionDigits;
      } catch (e) {
        exponents[cur] = 2;
      }
    }
    return exponents[cur];
  }

  // Exact decimal text of minor units.
  function decimalText(minor, cur) {
    const e = exponent(cur);
    const neg = minor < 0n;
    const digits = (neg ? -minor : minor).toString().padStart(e + 1, '0');
    const int = digits.slice(0, digits.length - e);
    const frac = digits.slice(digits.length - e);
    return (neg ? '-' : '') + int + (e ? `.${frac}` : '');
  }

  function money(minor, cur) {
    const e = exponent(cur);
    try {
      return new Intl.NumberFormat(undefined, {
        style: 'currency',
        currency: cur,
        minimumFractionDigits: e,
        maximumFractionDigits: e,
      }).format(decimalText(minor, cur));
    } catch (err) {
      return `${decimalText(minor, cur)} ${cur}`;
    }
  }

  // Forecasts are estimates (floats from the API): whole units.
  function approx(x, cur) {
    if (x === null || x === undefined || Number.isNaN(x)) return '–';
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency: cur, maximumFractionDigits: 0 }).format(x);
    } catch (err) {
      return `${Math.round(x)} ${cur}`;
    }
  }

  const toMajor = (minor, cur) => Number(minor) / 10 ** exponent(cur);
  const sign = (minor) => (minor < 0n ? 'neg' : minor > 0n ? 'pos' : '');

  // A UTC day: 'YYYY-MM-DD' <-> ms.
  const dayMs = (d) => Date.parse(`${d}T00:00:00Z`);
  const msDay = (ms) => new Date(ms).toISOString().slice(0, 10);
  const addDays = (d, n) => msDay(dayMs(d) + n * 86400000);

  function bucketOf(day, bucket) {
    if (bucket === 'month') return `${day.slice(0, 7)}-01`;
    if (bucket === 'week') {
      const wd = (new Date(dayMs(day)).getUTCDay() + 6) % 7; // Monday = 0
      return addDays(day, -wd);
    }
    return day;
  }
  function nextBucket(b, bucket) {
    if (bucket === 'month') {
      const d = new Date(dayMs(b));
      d.setUTCMonth(d.getUTCMonth() + 1);
      return msDay(d.getTime());
    }
    return addDays(b, bucket === 'week' ? 7 : 1);
  }

  // A time in the browser's zone, with UTC on hover.
  function timeEl(iso, withTime = true) {
    if (!iso) return document.createTextNode('–');
    const t = new Date(iso);
    const el = document.createElement('time');
    el.dateTime = iso;
    el.title = `${t.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace('Z', ' UTC')}`;
    el.textContent = withTime ? t.toLocaleString() : t.toLocaleDateString();
    return el;
  }
  function dayEl(day) {
    const el = document.createElement('time');
    el.dateTime = day;
    el.title = `${day} (UTC day)`;
    el.textContent = new Date(`${day}T12:00:00Z`).toLocaleDateString(undefined, { timeZone: 'UTC' });
    return el;
  }
  function ago(iso) {
    if (!iso) return 'never';
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  // ------------------------------------------------------------ DOM helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  // A table: columns [{label, num, cell(row) -> node|text}], rows.
  function table(columns, rows, opts = {}) {
    if (!rows.length) return h('p', { class: 'empty' }, opts.empty || 'Nothing here.');
    return h(
      'table',
      { 'data-name': opts.name },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.label)))),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            { class: opts.rowClass ? opts.rowClass(r) : null },
            columns.map((c) => h('td', { class: (c.num ? 'num ' : '') + (c.cls ? c.cls(r) : '') }, c.cell(r))),
          ),
        ),
      ),
    );
  }

  function put(id, ...nodes) {
    document.getElementById(id).replaceChildren(...nodes.flat());
  }

  function card(label, value, sub, cls) {
    return h(
      'div',
      { class: 'card' },
      h('div', { class: 'label' }, label),
      h('div', { class: `value ${cls || ''}` }, value),
      sub ? h('div', { class: 'sub' }, sub) : null,
    );
  }

  function showError(view, err) {
    const el = document.querySelector(`#view-${view} .error`);
    if (!err) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    el.hidden = false;
    el.textContent = `Could not load: ${err.message}`;
  }

  // ------------------------------------------------------------ charts

  // Draws (or redraws) a uPlot chart in `id`, sized to its container.
  function plot(id, opts, data) {
    const el = document.getElementById(id);
    const width = Math.max(280, Math.floor(el.getBoundingClientRect().width) || el.parentElement.clientWidth);
    const height = window.innerWidth < 700 ? 240 : 320;
    if (S.plots[id]) S.plots[id].destroy();
    el.replaceChildren();
    const u = new uPlot(
      {
        width,
        height,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
        legend: { live: true },
        cursor: { focus: { prox: 16 } },
        ...opts,
      },
      data,
      el,
    );
    S.plots[id] = u;
    return u;
  }
  const resize = () => {
    for (const [id, u] of Object.entries(S.plots)) {
      const el = document.getElementById(id);
      if (el.offsetParent !== null) u.setSize({ width: Math.max(280, Math.floor(el.getBoundingClientRect().width)), height: u.height });
    }
  };
  window.addEventListener('resize', resize);

  const moneyAxis = (cur) => ({
    values: (u, ticks) => ticks.map((v) => approxShort(v, cur)),
    size: 90,
  });
  function approxShort(v, cur) {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency: cur, notation: 'compact', maximumFractionDigits: 1 }).format(v);
    } catch (e) {
      return String(v);
    }
  }

  // ------------------------------------------------------------ cash flow

  const cf = { auto: true };

  function lastDay() {
    return S.lastDay || msDay(Date.now());
  }

  async function loadCashflow() {
    const bucket = $('#cf-bucket').value;
    if (cf.auto || !$('#cf-to').value || !$('#cf-from').value) {
      $('#cf-to').value = lastDay();
      $('#cf-from').value = addDays(lastDay(), -89);
    }
    const from = $('#cf-from').value;
    const toIncl = $('#cf-to').value;
    if (from > toIncl) throw new Error('"From" is after "To"');
    const to = addDays(toIncl, 1);
    const span = (dayMs(to) - dayMs(from)) / 86400000;
    const prevFrom = addDays(from, -span);
    let cur = $('#cf-currency').value;
    const [rows, prev] = await Promise.all([
      allPages('/api/v1/windows/cashflow_daily', { from, to }),
      allPages('/api/v1/windows/cashflow_daily', { from: prevFrom, to: from }),
    ]);
    // Currencies seen (the select keeps the user's choice).
    const currencies = [...new Set([...rows, ...prev].map((r) => r.currency))].sort();
    if (!currencies.length) currencies.push(cur || 'NGN');
    if (!cur || !currencies.includes(cur)) cur = currencies[0];
    const sel = $('#cf-currency');
    sel.replaceChildren(...currencies.map((c) => h('option', { value: c, selected: c === cur }, c)));
    const mine = rows.filter((r) => r.currency === cur);
    const prevMine = prev.filter((r) => r.currency === cur);
    for (const r of mine) if (r.category) S.categories.add(r.category);

    // Buckets over the whole range, empty ones included.
    const buckets = [];
    for (let b = bucketOf(from, bucket); b < to; b = nextBucket(b, bucket)) buckets.push(b);
    const index = new Map(buckets.map((b, i) => [b, i]));
    const inflow = buckets.map(() => 0n);
    const outflow = buckets.map(() => 0n);
    for (const r of mine) {
      const i = index.get(bucketOf(r.window_start.slice(0, 10), bucket));
      inflow[i] += r.inflow_minor;
      outflow[i] += r.outflow_minor;
    }
    const net = buckets.map((_, i) => inflow[i] - outflow[i]);
    const sum = (a) => a.reduce((x, y) => x + y, 0n);
    const totals = { inflow: sum(inflow), outflow: sum(outflow) };
    const ptotals = {
      inflow: sum(prevMine.map((r) => r.inflow_minor)),
      outflow: sum(prevMine.map((r) => r.outflow_minor)),
    };
    const change = (a, b) => {
      const d = a - b;
      return `${d >= 0n ? '+' : ''}${money(d, cur)} against the previous ${span} days`;
    };
    put(
      'cf-cards',
      [
        card('Cash in', money(totals.inflow, cur), change(totals.inflow, ptotals.inflow), 'pos'),
        card('Cash out', money(totals.outflow, cur), change(totals.outflow, ptotals.outflow), 'neg'),
        card(
          'Net',
          money(totals.inflow - totals.outflow, cur),
          change(totals.inflow - totals.outflow, ptotals.inflow - ptotals.outflow),
          sign(totals.inflow - totals.outflow),
        ),
      ],
    );

    const xs = buckets.map((b) => dayMs(b) / 1000);
    const data = [
      xs,
      inflow.map((m) => toMajor(m, cur)),
      outflow.map((m) => -toMajor(m, cur)),
      net.map((m) => toMajor(m, cur)),
    ];
    const bars = uPlot.paths.bars({ size: [0.6, 40], align: 0 });
    const u = plot(
      'chart-cashflow',
      {
        scales: { x: { time: true } },
        axes: [{}, moneyAxis(cur)],
        series: [
          { label: bucket },
          { label: 'Cash in', stroke: '#146c2e', fill: 'rgba(20,108,46,0.35)', paths: bars, value: (u, v) => approx(v, cur) },
          { label: 'Cash out', stroke: '#b3261e', fill: 'rgba(179,38,30,0.35)', paths: bars, value: (u, v) => approx(v, cur) },
          { label: 'Net', stroke: '#0b57d0', width: 2, value: (u, v) => approx(v, cur) },
        ],
      },
      data,
    );
    F.charts.cashflow = {
      currency: cur,
      bucket,
      from,
      to,
      buckets,
      inflow_minor: inflow.map(String),
      outflow_minor: outflow.map(String),
      net_minor: net.map(String),
      plotted: u.data.map((a) => Array.from(a)),
      canvas: !!document.querySelector('#chart-cashflow canvas'),
    };

    // By category and by account, this period and the previous one.
    const group = (list, key) => {
      const m = new Map();
      for (const r of list) {
        const k = r[key] || '(none)';
        const g = m.get(k) || { key: k, inflow: 0n, outflow: 0n, count: 0 };
        g.inflow += r.inflow_minor;
        g.outflow += r.outflow_minor;
        g.count += Number(r.tx_count || 0);
        m.set(k, g);
      }
      return m;
    };
    const byCat = group(mine, 'category');
    const byAcc = group(mine, 'account_id');
    const moneyCols = (first) => [
      { label: first, cell: (g) => g.key },
      { label: 'Cash in', num: true, cls: () => 'pos', cell: (g) => money(g.inflow, cur) },
      { label: 'Cash out', num: true, cls: () => 'neg', cell: (g) => money(g.outflow, cur) },
      { label: 'Net', num: true, cls: (g) => sign(g.inflow - g.outflow), cell: (g) => money(g.inflow - g.outflow, cur) },
      { label: 'Transactions', num: true, cell: (g) => g.count },
    ];
    const sorted = (m) => [...m.values()].sort((a, b) => (b.outflow + b.inflow > a.outflow + a.inflow ? 1 : -1));
    put('cf-by-category', table(moneyCols('Category'), sorted(byCat), { name: 'by-category' }));
    put('cf-by-account', table(moneyCols('Account'), sorted(byAcc), { name: 'by-account' }));

    const movers = (curM, prevM, pick) => {
      const keys = new Set([...curM.keys(), ...prevM.keys()]);
      const out = [];
      for (const k of keys) {
        const a = curM.get(k);
        const b = prevM.get(k);
        const now = a ? pick(a) : 0n;
        const before = b ? pick(b) : 0n;
        out.push({ key: k, now, before, change: now - before });
      }
      const abs = (x) => (x < 0n ? -x : x);
      out.sort((x, y) => (abs(y.change) > abs(x.change) ? 1 : abs(y.change) < abs(x.change) ? -1 : x.key < y.key ? -1 : 1));
      return out.slice(0, 5);
    };
    const catMovers = movers(byCat, group(prevMine, 'category'), (g) => g.outflow);
    const accMovers = movers(byAcc, group(prevMine, 'account_id'), (g) => g.inflow - g.outflow);
    $('#cf-prev-range').textContent = `Previous period: ${prevFrom} to ${addDays(from, -1)} (${span} days).`;
    const moverCols = (first) => [
      { label: first, cell: (m) => m.key },
      { label: 'This period', num: true, cell: (m) => money(m.now, cur) },
      { label: 'Previous', num: true, cell: (m) => money(m.before, cur) },
      { label: 'Change', num: true, cls: (m) => sign(m.change), cell: (m) => `${m.change > 0n ? '+' : ''}${money(m.change, cur)}` },
    ];
    put('cf-movers-category', table(moverCols('Category'), catMovers, { name: 'movers-category' }));
    put('cf-movers-account', table(moverCols('Account'), accMovers, { name: 'movers-account' }));
    const plain = (list) => list.map((m) => ({ key: m.key, now: String(m.now), before: String(m.before), change: String(m.change) }));
    F.tables.cashflow = {
      by_category: [...byCat.values()].map((g) => ({ key: g.key, inflow: String(g.inflow), outflow: String(g.outflow) })),
      by_account: [...byAcc.values()].map((g) => ({ key: g.key, inflow: String(g.inflow), outflow: String(g.outflow) })),
      movers_category: plain(catMovers),
      movers_account: plain(accMovers),
      prev_from: prevFrom,
    };
  }

  // ------------------------------------------------------------ forecast

  const BASELINES = {
    mean_rate: 'the average day of its history',
    trailing_28_mean: 'the average day of the last 4 weeks',
    seasonal_naive_7: 'the same weekday last week',
    last_week: 'last week repeated',
    croston_sba: 'the average rate of its irregular payments (Croston/SBA)',
    tsb: 'the average rate of its irregular payments (TSB)',
    zero: 'no movement',
  };
  const modelWords = (m) => (m === 'prophet' ? 'Prophet (trend, weekly and yearly patterns, known recurring items)' : BASELINES[m] || m);
  const KIND = {
    org_balance: 'Organisation balance',
    org_net_flow: 'Organisation net flow',
    account_balance: 'Account balance',
    account_net_flow: 'Account net flow',
    category_outflow: 'Category spending',
  };
  const seriesLabel = (r) => `${KIND[r.kind] || r.kind}${r.subject ? ` · ${r.subject}` : ''} (${r.currency})`;

  async function loadForecast() {
    const runs = await api('/api/v1/forecasts');
    const sel = $('#fc-series');
    const chosen = sel.value || (runs.find((r) => r.kind === 'org_balance') || runs[0] || {}).series_id;
    const groups = [
      ['Organisation', (r) => r.kind.startsWith('org_')],
      ['Accounts', (r) => r.kind.startsWith('account_')],
      ['Categories', (r) => r.kind === 'category_outflow'],
    ];
    sel.replaceChildren(
      ...groups.map(([label, f]) =>
        h('optgroup', { label }, runs.filter(f).map((r) => h('option', { value: r.series_id, selected: r.series_id === chosen }, seriesLabel(r)))),
      ),
    );
    const run = runs.find((r) => r.series_id === chosen);
    if (!run) {
      put('fc-cards', h('p', { class: 'empty' }, 'No forecast yet: the service refreshes forecasts after data arrives.'));
      F.charts.forecast = { series_id: null };
      return;
    }
    const cur = run.currency;
    const points = await api(`/api/v1/forecasts/${encodeURIComponent(run.series_id)}/points`);
    // Actuals: the 90 days up to the end of training, from the daily windows.
    const end = addDays(run.train_end, 1);
    const start = addDays(end, -90);
    const isBalance = run.kind.endsWith('_balance');
    const rows = await allPages('/api/v1/windows/cashflow_daily', {
      from: isBalance ? start : start,
      to: end,
      currency: cur,
      ...(run.kind.startsWith('account_') ? { account_id: run.subject } : {}),
      ...(run.kind === 'category_outflow' ? { category: run.subject } : {}),
    });
    const daily = new Map();
    for (const r of rows) {
      const d = r.window_start.slice(0, 10);
      const v = run.kind === 'category_outflow' ? r.outflow_minor : r.inflow_minor - r.outflow_minor;
      daily.set(d, (daily.get(d) || 0n) + v);
    }
    const actualDays = [];
    for (let d = start; d < end; d = addDays(d, 1)) actualDays.push(d);
    let actual;
    if (isBalance) {
      // Balance at the end of day d = last balance - flows after d.
      const last = run.last_balance;
      let after = 0n;
      actual = new Array(actualDays.length);
      for (let i = actualDays.length - 1; i >= 0; i--) {
        actual[i] = last - toMajor(after, cur);
        after += daily.get(actualDays[i]) || 0n;
      }
    } else {
      actual = actualDays.map((d) => toMajor(daily.get(d) || 0n, cur));
    }
    const fdays = points.map((p) => p.ds);
    const days = [...actualDays, ...fdays];
    const nA = actualDays.length;
    const pad = (arr, before) => (before ? [...arr, ...fdays.map(() => null)] : [...actualDays.map(() => null), ...arr]);
    const data = [
      days.map((d) => dayMs(d) / 1000),
      pad(actual, true),
      pad(points.map((p) => p.yhat), false),
      pad(points.map((p) => p.yhat_lower), false),
      pad(points.map((p) => p.yhat_upper), false),
    ];
    const u = plot(
      'chart-forecast',
      {
        scales: { x: { time: true } },
        axes: [{}, moneyAxis(cur)],
        series: [
          { label: 'day' },
          { label: 'Actual', stroke: '#1b1f24', width: 1.5, value: (u, v) => approx(v, cur) },
          { label: 'Forecast', stroke: '#0b57d0', width: 2, dash: [6, 4], value: (u, v) => approx(v, cur) },
          { label: `Lower (${Math.round(run.interval_width * 100)}%)`, stroke: 'rgba(11,87,208,0.5)', value: (u, v) => approx(v, cur) },
          { label: 'Upper', stroke: 'rgba(11,87,208,0.5)', value: (u, v) => approx(v, cur) },
        ],
        bands: [{ series: [4, 3], fill: 'rgba(11,87,208,0.15)' }],
      },
      data,
    );
    F.charts.forecast = {
      series_id: run.series_id,
      currency: cur,
      actual_days: actualDays,
      actual,
      ds: fdays,
      yhat: points.map((p) => p.yhat),
      yhat_lower: points.map((p) => p.yhat_lower),
      yhat_upper: points.map((p) => p.yhat_upper),
      plotted: u.data.map((a) => Array.from(a)),
      canvas: !!document.querySelector('#chart-forecast canvas'),
      n_actual: nA,
    };

    // The balance that goes with this series (its runway).
    const balanceId = run.kind.endsWith('_balance')
      ? run.series_id
      : run.kind === 'account_net_flow'
        ? `account_balance/${cur}/${run.subject}`
        : `org_balance/${cur}`;
    const bal = runs.find((r) => r.series_id === balanceId);
    // The flow series whose backtest says how good this forecast is.
    const flowId = run.kind.endsWith('_balance')
      ? run.kind === 'account_balance'
        ? `account_net_flow/${cur}/${run.subject}`
        : `org_net_flow/${cur}`
      : run.series_id;
    const flow = runs.find((r) => r.series_id === flowId) || run;
    const cards = [];
    if (bal) {
      const basis =
        bal.balance_basis === 'anchored'
          ? `Anchored: ${approx(bal.anchor_balance, cur)} on ${bal.anchor_date}, plus the flows since`
          : 'Flows only: no known balance for this account, so this is the cumulative flow from the last day of data';
      cards.push(card('Balance at the end of the data', approx(bal.last_balance, cur), basis));
      if (bal.balance_basis === 'anchored') {
        cards.push(
          card(
            'Runway',
            bal.below_threshold_date ? `Below ${approx(bal.runway_threshold, cur)} on ${bal.below_threshold_date}` : `Stays above ${approx(bal.runway_threshold, cur)}`,
            `Lowest projected balance ${approx(bal.lowest_balance, cur)} on ${bal.lowest_date}` +
              (bal.lower_below_threshold_date ? `; at the interval's lower bound below it from ${bal.lower_below_threshold_date}` : ''),
            bal.below_threshold_date ? 'neg' : 'pos',
          ),
        );
      } else {
        cards.push(card('Runway', 'Not known', 'Record a balance (finopsia balance set) to get a runway.'));
      }
    }
    cards.push(
      card(
        'Forecast',
        run.model === 'prophet' ? 'Prophet model' : 'Simple guess (baseline)',
        `${modelWords(run.model)}; ${run.horizon_days} days from ${addDays(run.train_end, 1)}; fitted ${ago(run.run_at)}`,
      ),
    );
    const [headline, detail] = skillWords(flow, cur);
    cards.push(card('How good is it?', headline, flow === run ? detail : `${detail} (from the backtest of ${seriesLabel(flow)})`));
    put('fc-cards', cards);
    F.charts.forecast.skill_text = `${headline}: ${detail}`;
    $('#fc-explain').textContent =
      'Skill compares the forecast with the best simple guess on past data: the forecast is made from an earlier day and checked against what happened, many times over. ' +
      'Where the model does not beat the simple guess, the simple guess is shown instead.';
  }

  // [headline, detail] of a series' backtest, in plain words.
  function skillWords(run, cur) {
    if (run.backtest_skill === null || run.backtest_skill === undefined) {
      return ['Not measured yet', 'The backtest runs once a day when there is enough history.'];
    }
    const base = run.backtest_baseline;
    if (run.model !== 'prophet') {
      const err = run.baseline_weekly_mae;
      return [
        'No better than the average',
        `The model did not beat ${BASELINES[base] || base} on this history, so that simple guess is shown` +
          (err !== null && err !== undefined ? `; typically off by about ${approx(err, cur)} a week.` : '.'),
      ];
    }
    const pct = Math.round(run.backtest_skill * 100);
    return [
      `${pct}% better than the simple guess`,
      `Typically off by about ${approx(run.backtest_weekly_mae, cur)} a week; ${pct}% better than assuming ${BASELINES[base] || base}.`,
    ];
  }

  // ------------------------------------------------------------ recurring

  async function loadRecurring() {
    const rows = await api('/api/v1/recurring');
    F.tables.recurring = rows;
    put(
      'recurring-table',
      table(
        [
          { label: 'Account', cell: (r) => r.account_id },
          { label: 'Category', cell: (r) => r.category || r.key },
          { label: 'Direction', cell: (r) => r.direction },
          { label: 'Cadence', cell: (r) => r.cadence + (r.day_of_month ? ` (day ${r.day_of_month})` : '') },
          { label: 'Usual amount', num: true, cell: (r) => approx(r.amount, r.currency) },
          { label: 'Seen', num: true, cell: (r) => r.occurrences },
          { label: 'Last', cell: (r) => (r.last_date ? dayEl(r.last_date) : '–') },
          { label: 'Next expected', cell: (r) => (r.next_expected ? dayEl(r.next_expected) : '–') },
        ],
        rows,
        { name: 'recurring', empty: 'No recurring transactions found in the data (payroll, rent, taxes and subscriptions appear here once they have repeated a few times).' },
      ),
    );
  }

  // ------------------------------------------------------------ transactions

  const tx = { rows: [], cursor: null, editing: false };

  function txParams() {
    const p = {
      q: $('#tx-q').value.trim(),
      account: $('#tx-account').value.trim(),
      category: $('#tx-category').value.trim(),
      currency: $('#tx-currency').value.trim().toUpperCase(),
      from: $('#tx-from').value,
      to: $('#tx-to').value ? addDays($('#tx-to').value, 1) : '',
      needs_review: $('#tx-review').value,
    };
    return p;
  }

  async function loadTransactions(more = false) {
    if (!$('#tx-from').value && !tx.touched) {
      $('#tx-from').value = addDays(lastDay(), -30);
    }
    const keep = more ? tx.rows.length : Math.max(50, Math.min(tx.rows.length, 1000));
    const page = await api('/api/v1/transactions' + qs({ ...txParams(), limit: more ? 50 : keep, cursor: more ? tx.cursor : null }));
    tx.rows = more ? [...tx.rows, ...page.items] : page.items;
    tx.cursor = page.next_cursor;
    renderTransactions();
    const dl = $('#categories');
    dl.replaceChildren(...[...S.categories].sort().map((c) => h('option', { value: c })));
  }

  function renderTransactions() {
    for (const r of tx.rows) if (r.category) S.categories.add(r.category);
    const cols = [
      { label: 'When', cell: (r) => timeEl(r.event_time) },
      { label: 'Account', cell: (r) => r.account_id },
      { label: 'Description', cell: (r) => [r.description || '', r.counterparty ? h('div', { class: 'hint' }, r.counterparty) : null] },
      { label: 'Amount', num: true, cls: (r) => sign(r.amount_minor), cell: (r) => money(r.amount_minor, r.currency) },
      {
        label: 'Category',
        cell: (r) =>
          can('ingest')
            ? h(
                'form',
                { class: 'cat-edit', 'data-key': `${r.source}/${r.transaction_id}`, onsubmit: (e) => correct(e, r) },
                h('input', { value: r.category || '', list: 'categories', 'aria-label': `Category of ${r.description || r.transaction_id}`, required: true }),
                h('button', { type: 'submit', class: 'secondary' }, 'Save'),
              )
            : r.category || '–',
      },
      {
        label: 'Confidence',
        num: true,
        cell: (r) =>
          r.needs_review
            ? h('span', { class: 'badge warn', title: 'Low confidence: check this category' }, `${Math.round((r.category_confidence || 0) * 100)}% · review`)
            : r.category_confidence === null || r.category_confidence === undefined
              ? '–'
              : `${Math.round(r.category_confidence * 100)}%`,
      },
      { label: 'By', cell: (r) => r.category_source || '–' },
    ];
    put(
      'tx-table',
      table(cols, tx.rows, {
        name: 'transactions',
        rowClass: (r) => (r.needs_review ? 'review' : null),
        empty: 'No transactions match these filters.',
      }),
    );
    $('#tx-more').hidden = !tx.cursor;
    F.tables.transactions = tx.rows.map((r) => ({
      source: r.source,
      transaction_id: r.transaction_id,
      amount_minor: String(r.amount_minor),
      category: r.category,
      needs_review: r.needs_review,
      description: r.description,
    }));
  }

  async function correct(e, r) {
    e.preventDefault();
    const form = e.currentTarget;
    const category = form.querySelector('input').value.trim();
    if (!category || category === r.category) return;
    const btn = form.querySelector('button');
    btn.disabled = true;
    try {
      const a = await api(`/api/v1/transactions/${encodeURIComponent(r.source)}/${encodeURIComponent(r.transaction_id)}/category`, {
        method: 'POST',
        body: { category },
      });
      r.category = a.category;
      $('#tx-msg').textContent = `Saved: ${r.description || r.transaction_id} is now ${a.category} (was ${a.previous_category || 'none'}). The next retrain will learn it.`;
      F.lastCorrection = { source: r.source, transaction_id: r.transaction_id, category: a.category };
    } catch (err) {
      $('#tx-msg').textContent = '';
      showError('transactions', err);
    } finally {
      btn.disabled = false;
    }
  }

  // ------------------------------------------------------------ quarantine

  const qz = { selected: null };

  async function loadQuarantine() {
    const params = {
      reason: $('#q-reason').value.trim(),
      source: $('#q-source').value.trim(),
      status: $('#q-status').value,
    };
    const rows = await allPages('/api/v1/quarantine', params);
    F.tables.quarantine = rows.map((r) => ({ id: r.id, reason: r.reason, transaction_id: r.transaction_id, resolved: r.resolved }));
    const reasons = new Map();
    for (const r of rows) reasons.set(r.reason, (reasons.get(r.reason) || 0) + 1);
    put('q-reasons', [...reasons].sort().map(([k, n]) => card(k, String(n), 'rows')));
    put(
      'q-table',
      table(
        [
          { label: 'Reason', cell: (r) => h('span', { class: 'badge bad' }, r.reason) },
          { label: 'Detail', cell: (r) => r.detail || '' },
          { label: 'Source', cell: (r) => `${r.source} · ${r.file}:${r.line}` },
          { label: 'Id', cell: (r) => r.transaction_id || '–' },
          { label: 'When', cell: (r) => timeEl(r.quarantined_at) },
          {
            label: '',
            cell: (r) =>
              r.resolved
                ? h('span', { class: 'badge ok' }, 'resolved')
                : h('button', { type: 'button', class: 'secondary', 'data-id': r.id, onclick: () => inspect(r.id) }, 'Inspect'),
          },
        ],
        rows,
        { name: 'quarantine', empty: 'Nothing in quarantine: every record was accepted.' },
      ),
    );
    if (qz.selected && !rows.some((r) => r.id === qz.selected && !r.resolved)) {
      // Resolved meanwhile: keep the answer on screen, hide the editor.
      $('#q-resubmit').disabled = true;
    }
  }

  async function inspect(id) {
    const r = await api(`/api/v1/quarantine/${encodeURIComponent(id)}`);
    qz.selected = id;
    $('#q-detail').hidden = false;
    $('#q-detail-id').textContent = r.id;
    $('#q-detail-why').textContent = `${r.reason}: ${r.detail || ''} (${r.source}, ${r.file} line ${r.line})`;
    $('#q-raw').textContent = r.raw || '';
    let fix;
    try {
      const obj = JSON.parse(r.raw);
      fix = JSON.stringify(obj, null, 2);
    } catch (e) {
      fix = JSON.stringify(
        { transaction_id: r.transaction_id || '', account_id: '', amount: '', currency: '', direction: 'outflow', description: '', transaction_date: '' },
        null,
        2,
      );
    }
    $('#q-fix').value = fix;
    $('#q-resubmit').disabled = !can('ingest');
    $('#q-msg').textContent = can('ingest') ? '' : 'Re-submitting needs the ingest role.';
    $('#q-fix').focus();
  }

  async function resubmit() {
    let record;
    try {
      record = JSON.parse($('#q-fix').value);
    } catch (e) {
      $('#q-msg').textContent = `Not JSON: ${e.message}`;
      return;
    }
    const btn = $('#q-resubmit');
    btn.disabled = true;
    try {
      const a = await api(`/api/v1/quarantine/${encodeURIComponent(qz.selected)}/resubmit`, { method: 'POST', body: { record } });
      $('#q-msg').textContent = a.resolved
        ? `Stored (${a.status}): the row is resolved.`
        : `Refused again: ${a.result.reason || ''} ${a.result.detail || ''}`;
      F.lastResubmit = a;
      if (!a.resolved) btn.disabled = false;
      await loadQuarantine();
    } catch (err) {
      btn.disabled = false;
      $('#q-msg').textContent = `Failed: ${err.message}`;
    }
  }

  // ------------------------------------------------------------ health

  async function loadHealth() {
    const [st, models, runs] = await Promise.all([api('/api/v1/status'), api('/api/v1/models'), api('/api/v1/forecasts')]);
    const p = st.pipeline;
    const lastRun = runs.map((r) => r.run_at).sort().pop();
    const job = st.jobs.find((j) => j.name === 'forecast_refresh');
    put(
      'h-cards',
      [
        card('Snapshot', `#${st.snapshot_seq}`, `${p.batches} micro-batches since start`),
        card('Last commit', p.last_commit_at ? ago(p.last_commit_at) : 'none since start', p.last_commit_at ? `took ${p.last_batch_ms} ms` : null),
        card('Watermark', p.watermark ? timeEl(p.watermark) : '–', p.max_event_time ? ['newest event ', timeEl(p.max_event_time)] : null),
        card('Event-time lag', p.event_lag_s === null ? '–' : `${Math.round(p.event_lag_s / 86400)} days`, 'wall clock minus the newest event'),
        card('Model', models.active || 'none', `${models.versions.length} version(s) registered`),
        card('Last forecast refresh', lastRun ? ago(lastRun) : 'none yet', job ? `${job.runs} runs, ${job.failures} failed${job.running ? ', running now' : ''}` : null),
      ],
    );
    const comp = new Map(st.components.map((c) => [`${c.kind}/${c.name}`, c]));
    // Throughput: accepted records per second between two polls.
    const now = Date.parse(st.now);
    if (S.prevSources) {
      const dt = (now - S.prevSources.at) / 1000;
      for (const s of st.sources) {
        const before = S.prevSources.counts[s.name];
        if (before !== undefined && dt > 0) S.rates[s.name] = (s.accepted + s.duplicates + s.quarantined - before) / dt;
      }
    }
    S.prevSources = { at: now, counts: Object.fromEntries(st.sources.map((s) => [s.name, s.accepted + s.duplicates + s.quarantined])) };
    const names = new Set([...st.components.filter((c) => c.kind === 'source').map((c) => c.name), ...st.sources.map((s) => s.name)]);
    const srcRows = [...names].sort().map((name) => ({ name, c: comp.get(`source/${name}`), s: st.sources.find((x) => x.name === name) }));
    put(
      'h-sources',
      table(
        [
          { label: 'Source', cell: (r) => r.name },
          { label: 'State', cell: (r) => (r.c ? h('span', { class: `badge ${r.c.ready ? 'ok' : 'bad'}` }, r.c.ready ? 'running' : 'down') : 'finished') },
          { label: 'Accepted', num: true, cell: (r) => (r.s ? r.s.accepted : 0) },
          { label: 'Duplicates', num: true, cell: (r) => (r.s ? r.s.duplicates : 0) },
          { label: 'Quarantined', num: true, cell: (r) => (r.s ? r.s.quarantined : 0) },
          { label: 'Records/s', num: true, cell: (r) => (S.rates[r.name] === undefined ? '–' : S.rates[r.name].toFixed(1)) },
          { label: 'Last records', cell: (r) => (r.s && r.s.last_seen_at ? ago(r.s.last_seen_at) : 'none yet') },
        ],
        srcRows,
        { name: 'sources' },
      ),
    );
    put(
      'h-sinks',
      table(
        [
          { label: 'Sink', cell: (s) => s.name },
          { label: 'Buffered', num: true, cell: (s) => s.buffered },
          { label: 'Delivered', num: true, cell: (s) => s.delivered },
          { label: 'Retries', num: true, cell: (s) => s.retries },
          { label: 'Overflows', num: true, cell: (s) => s.overflows },
        ],
        st.sinks,
        { name: 'sinks', empty: 'No sinks configured (the embedded store needs none).' },
      ),
    );
    put(
      'h-jobs',
      table(
        [
          { label: 'Job', cell: (j) => j.name },
          { label: 'Last run', cell: (j) => (j.last_start_at ? timeEl(j.last_start_at) : '–') },
          { label: 'Took', num: true, cell: (j) => `${(j.last_duration_ms / 1000).toFixed(1)} s` },
          { label: 'Outcome', cell: (j) => (j.running ? 'running' : j.last_ok === null ? '–' : j.last_ok ? 'ok' : 'failed') },
          { label: 'Runs', num: true, cell: (j) => j.runs },
          { label: 'Failures', num: true, cell: (j) => j.failures },
        ],
        st.jobs,
        { name: 'jobs', empty: 'No background job has run yet.' },
      ),
    );
    const errors = [
      ...st.components.filter((c) => !c.ready || (c.detail && /error/i.test(c.detail))).map((c) => `${c.kind} ${c.name}: ${c.detail || 'not ready'}`),
      ...st.jobs.filter((j) => j.last_error).map((j) => `job ${j.name}: ${j.last_error}`),
      ...runs.filter((r) => r.error).map((r) => `forecast ${r.series_id}: ${r.error}`),
    ];
    put('h-errors', errors.length ? errors.map((e) => h('li', {}, e)) : h('li', { class: 'empty' }, 'No errors.'));
    F.tables.health = { snapshot_seq: st.snapshot_seq, sources: st.sources, model: models.active, errors };
  }

  // ------------------------------------------------------------ views, live updates

  const VIEWS = {
    cashflow: loadCashflow,
    forecast: loadForecast,
    recurring: loadRecurring,
    transactions: () => loadTransactions(false),
    quarantine: loadQuarantine,
    health: loadHealth,
  };

  async function load(view) {
    try {
      await VIEWS[view]();
      showError(view, null);
      F.loaded[view] = (F.loaded[view] || 0) + 1;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      showError(view, err);
      console.error(`dashboard: ${view}:`, err.message);
    }
  }

  function show(view, push = true) {
    if (!VIEWS[view]) view = 'cashflow';
    S.view = view;
    for (const b of document.querySelectorAll('#nav button')) {
      if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
    for (const sec of document.querySelectorAll('.view')) sec.hidden = sec.id !== `view-${view}`;
    if (push && location.hash !== `#${view}`) history.replaceState(null, '', `#${view}`);
    return load(view);
  }

  function updateLastDay(st, runs) {
    const days = [];
    if (st && st.pipeline.max_event_time) days.push(st.pipeline.max_event_time.slice(0, 10));
    for (const r of runs || []) if (r.train_end) days.push(r.train_end);
    if (days.length) {
      const d = days.sort().pop();
      if (!S.lastDay || d > S.lastDay) {
        S.lastDay = d;
        return true;
      }
    }
    return false;
  }

  // Polls the status; a new snapshot (or a new forecast refresh) reloads
  // the view on screen, keeping its filters.
  async function poll() {
    try {
      const st = await api('/api/v1/status');
      S.status = st;
      const job = st.jobs.find((j) => j.name === 'forecast_refresh');
      const fr = job ? `${job.runs}/${job.running}` : '';
      const changed = st.snapshot_seq !== S.seq || fr !== S.forecastRuns;
      updateLastDay(st, null);
      S.seq = st.snapshot_seq;
      S.forecastRuns = fr;
      $('#live').textContent = `Live: snapshot #${st.snapshot_seq}, checked ${new Date().toLocaleTimeString()}`;
      if (changed && !busyEditing()) {
        F.updates += 1;
        await load(S.view);
      } else if (S.view === 'health') {
        await load('health');
      }
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) {
        $('#live').textContent = `Not live: ${err.message}`;
      }
    } finally {
      if (S.role) setTimeout(poll, 2000);
    }
  }

  // Do not re-render a table under a category being typed.
  function busyEditing() {
    const a = document.activeElement;
    return !!(a && a.closest && (a.closest('.cat-edit') || a.id === 'q-fix'));
  }

  function showLogin(message) {
    S.role = '';
    $('#nav').hidden = true;
    $('#who').hidden = true;
    for (const sec of document.querySelectorAll('.view')) sec.hidden = true;
    $('#login').hidden = false;
    const err = $('#login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('#login-token').focus();
  }

  async function start() {
    $('#login-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const r = await fetch('/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token: $('#login-token').value }),
        credentials: 'same-origin',
      });
      if (r.status === 204) {
        location.replace('/');
      } else {
        let msg = 'That token was not accepted.';
        try {
          msg = (await r.json()).error.message;
        } catch (err) {
          /* keep the generic message */
        }
        showLogin(msg);
      }
    });
    if (!S.role) {
      showLogin(meta('login-error'));
      return;
    }
    $('#nav').hidden = false;
    $('#who').hidden = false;
    $('#who-name').textContent = `${S.name} (${S.role})`;
    $('#logout').addEventListener('click', async () => {
      await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': S.csrf }, credentials: 'same-origin' });
      location.replace('/');
    });
    for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => show(b.dataset.view));
    $('#cf-bucket').addEventListener('change', () => load('cashflow'));
    $('#cf-currency').addEventListener('change', () => load('cashflow'));
    for (const id of ['#cf-from', '#cf-to']) {
      $(id).addEventListener('change', () => {
        cf.auto = false;
        load('cashflow');
      });
    }
    $('#cf-latest').addEventListener('click', () => {
      cf.auto = true;
      load('cashflow');
    });
    $('#fc-series').addEventListener('change', () => load('forecast'));
    $('#tx-filters').addEventListener('submit', (e) => {
      e.preventDefault();
      tx.touched = true;
      tx.rows = [];
      load('transactions');
    });
    $('#tx-more').addEventListener('click', () => loadTransactions(true).catch((err) => showError('transactions', err)));
    $('#q-filters').addEventListener('submit', (e) => {
      e.preventDefault();
      load('quarantine');
    });
    $('#q-resubmit').addEventListener('click', resubmit);
    try {
      const [st, runs] = await Promise.all([api('/api/v1/status'), api('/api/v1/forecasts')]);
      updateLastDay(st, runs);
      S.seq = st.snapshot_seq;
      const job = st.jobs.find((j) => j.name === 'forecast_refresh');
      S.forecastRuns = job ? `${job.runs}/${job.running}` : '';
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      console.error('dashboard: start:', err.message);
    }
    await show((location.hash || '#cashflow').slice(1), false);
    setTimeout(poll, 2000);
  }

  start();
})();
