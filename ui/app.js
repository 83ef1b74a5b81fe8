// celeriac dashboard: plain JavaScript, no framework, no build step.
// Every URL is relative (the page lives at <prefix>/ui/, the API at <prefix>/),
// so the page works behind a path-prefix reverse proxy.
'use strict';
(() => {
  const API = '../';
  const TOKEN_KEY = 'celeriac.token';
  const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
  const STATUSES = ['PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED', 'PAUSED'];
  const EVENT_TYPES = ['task-sent', 'task-started', 'task-succeeded', 'task-failed', 'task-retried',
    'task-revoked', 'task-progress', 'task-paused', 'task-resumed', 'worker-online', 'worker-offline',
    'worker-heartbeat'];
  const EVENT_STATUS = {
    'task-sent': 'PENDING', 'task-started': 'STARTED', 'task-succeeded': 'SUCCESS', 'task-failed': 'FAILURE',
    'task-retried': 'RETRY', 'task-revoked': 'REVOKED', 'task-paused': 'PAUSED', 'task-resumed': 'PENDING',
  };
  const WINDOW_S = 900; // throughput chart: 15 minutes of one-second buckets

  const S = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    mode: 'connecting', // live | reconnecting | polling | offline | connecting
    es: null, everLive: false, retryMs: 1000,
    view: null, pending: [], flushQueued: false,
    apiDown: false, seeded: false,
  };

  // ---------- small helpers ----------
  const $ = (sel, root = document) => root.querySelector(sel);
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const k of kids.flat()) {
      if (k == null || k === false) continue;
      el.append(k instanceof Node ? k : String(k));
    }
    return el;
  }
  // replaceChildren without the null/false holes that conditional children leave.
  function fill(el, ...kids) { el.replaceChildren(...kids.flat().filter((k) => k != null && k !== false)); }
  const dash = '–';
  const num = (v) => (typeof v === 'number' ? v.toLocaleString() : dash);
  const asList = (d, key) => (Array.isArray(d) ? d : (d && Array.isArray(d[key]) ? d[key] : []));
  const qName = (q) => q.name ?? q.queue ?? '';
  const shortId = (id) => (typeof id === 'string' && id.length > 13 ? id.slice(0, 8) + '…' : String(id));
  const taskLink = (id, text) => h('a', { href: '#/task/' + encodeURIComponent(id), class: 'mono', title: id }, text ?? shortId(id));
  const badge = (s) => h('span', { class: 'badge s-' + s }, s || dash);
  function parseTime(t) {
    if (t == null) return NaN;
    if (typeof t === 'number') return t > 1e12 ? t : t * 1000;
    return Date.parse(t);
  }
  function fmtTime(t) {
    const ms = parseTime(t);
    if (!Number.isFinite(ms)) return dash;
    const d = new Date(ms);
    const same = d.toDateString() === new Date().toDateString();
    return same ? d.toLocaleTimeString() : d.toLocaleString();
  }
  function ago(t) {
    const ms = parseTime(t);
    if (!Number.isFinite(ms)) return dash;
    const s = Math.round((Date.now() - ms) / 1000);
    const abs = Math.abs(s);
    const txt = abs < 60 ? abs + 's' : abs < 3600 ? Math.round(abs / 60) + 'm' : abs < 86400 ? Math.round(abs / 3600) + 'h' : Math.round(abs / 86400) + 'd';
    return s >= 0 ? txt + ' ago' : 'in ' + txt;
  }
  const timeCell = (t) => h('time', { datetime: t || null, title: t || null }, fmtTime(t));
  const json = (v) => JSON.stringify(v, null, 2);
  function toast(msg) {
    const t = $('#toast');
    t.textContent = msg;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.textContent = ''; }, 5000);
  }
  function markRendered(view) {
    const now = performance.now();
    if (window.__celeriacFirstRender == null) window.__celeriacFirstRender = now;
    document.documentElement.dataset.rendered = view;
  }

  // ---------- HTTP ----------
  function headers(extra) {
    const hd = { Accept: 'application/json', ...extra };
    if (S.token) hd.Authorization = 'Bearer ' + S.token;
    return hd;
  }
  // Never throws: every panel turns a failure into text, so a missing endpoint is no JS error.
  async function api(method, path, body) {
    let r;
    try {
      r = await fetch(API + path, {
        method, cache: 'no-store',
        headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      S.apiDown = true;
      if (S.mode !== 'live') setMode('offline');
      return { ok: false, status: 0, data: null };
    }
    if (S.apiDown) {
      // The API is back (restarted): reload what the page shows.
      S.apiDown = false;
      if (S.mode === 'offline') setMode('polling');
      setTimeout(refreshView, 0);
    }
    let data = null;
    try {
      const text = await r.text();
      data = text ? JSON.parse(text) : null;
    } catch (e) { data = null; }
    if (r.status === 401 || r.status === 403) toast('The API refused the token (' + r.status + '): set it in the header.');
    return { ok: r.ok, status: r.status, data };
  }
  function errText(r) {
    if (r.status === 0) return 'the API cannot be reached';
    const msg = r.data && ((r.data.error && r.data.error.message) || r.data.message);
    if ((r.status === 404 || r.status === 405) && !msg) return 'not available on this API';
    return msg || 'HTTP ' + r.status;
  }
  // 404 (no route) and 405 (the path exists for another method): the endpoint is not in this API.
  const missing = (r) => r.status === 404 || r.status === 405;
  const unavailable = (what, r) => h('p', { class: 'na' },
    missing(r) ? what + ' is not available on this API (' + r.status + ').' : what + ': ' + errText(r) + ' (' + r.status + ').');

  // While the API is unreachable a panel keeps its last table; the indicator says why.
  const stale = (box, r) => r.status === 0 && !!box.querySelector('table');

  // Runs an operation and writes its answer into `out`.
  async function act(out, label, method, path, okText) {
    out.className = 'answer';
    out.textContent = label + '…';
    const r = await api(method, path);
    let detail = r.ok ? (typeof okText === 'function' ? okText(r) : okText) : errText(r);
    out.className = 'answer' + (r.ok ? '' : ' err');
    out.textContent = label + ' → ' + (r.status || 'no answer') + ' ' + (detail || '');
    return r;
  }

  // Keyed table body update: rows are reused by key, so focus and scroll survive live updates.
  function syncRows(tbody, items, keyOf, build, update) {
    const old = new Map();
    for (const tr of tbody.children) if (tr.dataset.key != null) old.set(tr.dataset.key, tr);
    const rows = items.map((it) => {
      const k = String(keyOf(it));
      let tr = old.get(k);
      if (tr) old.delete(k); else { tr = build(it); tr.dataset.key = k; labelCells(tbody, tr); }
      update(tr, it);
      return tr;
    });
    for (const tr of old.values()) tr.remove();
    rows.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
  }
  // Each cell carries its column's name, shown before it when narrow screens stack rows as cards.
  function labelCells(tbody, tr) {
    const heads = tbody.parentNode && tbody.parentNode.tHead && tbody.parentNode.tHead.rows[0];
    if (!heads) return;
    Array.from(tr.children).forEach((cell, i) => { if (heads.cells[i]) cell.dataset.label = heads.cells[i].textContent; });
  }
  const setText = (el, v) => { const s = String(v); if (el.textContent !== s) el.textContent = s; };
  const setBadge = (td, s) => {
    const b = td.firstChild;
    if (b && b.textContent === s) return false;
    fill(td, badge(s));
    return true;
  };
  const table = (label, cols) => {
    const tbody = h('tbody');
    const t = h('table', null, h('caption', null, label), h('thead', null, h('tr', null,
      cols.map((c) => (typeof c === 'string' ? h('th', { scope: 'col' }, c) : h('th', { scope: 'col', class: c.cls }, c.t))))), tbody);
    return { el: h('div', { class: 'scroll' }, t), tbody, caption: t.caption };
  };

  // ---------- throughput (ring of one-second buckets) ----------
  const TP = { stamp: new Float64Array(WINDOW_S), ok: new Float64Array(WINDOW_S), bad: new Float64Array(WINDOW_S), dirty: true };
  function tpAdd(kind, sec, n) {
    const now = Math.floor(Date.now() / 1000);
    if (!(sec > now - WINDOW_S && sec <= now + 1)) sec = now;
    const i = sec % WINDOW_S;
    if (TP.stamp[i] !== sec) { TP.stamp[i] = sec; TP.ok[i] = 0; TP.bad[i] = 0; }
    TP[kind][i] += n;
    TP.dirty = true;
  }
  function tpSeries() {
    const now = Math.floor(Date.now() / 1000);
    const ok = new Float64Array(WINDOW_S), bad = new Float64Array(WINDOW_S);
    for (let k = 0; k < WINDOW_S; k++) {
      const sec = now - WINDOW_S + 1 + k, i = sec % WINDOW_S;
      if (TP.stamp[i] === sec) { ok[k] = TP.ok[i]; bad[k] = TP.bad[i]; }
    }
    return { ok, bad };
  }
  // Seeds the last minute from the API's counts, once, so the chart is not empty on load.
  function tpSeed(queues) {
    if (S.seeded) return;
    S.seeded = true;
    const done = queues.reduce((a, q) => a + (typeof q.completed_last_min === 'number' ? q.completed_last_min : 0), 0);
    const failed = queues.reduce((a, q) => a + (typeof q.failed_last_min === 'number' ? q.failed_last_min : 0), 0);
    const now = Math.floor(Date.now() / 1000);
    for (let k = 1; k <= 60; k++) {
      if (done) tpAdd('ok', now - k, done / 60);
      if (failed) tpAdd('bad', now - k, failed / 60);
    }
  }
  function drawChart(canvas, summary) {
    const { ok, bad } = tpSeries();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, canvas.clientWidth), hgt = Math.max(80, canvas.clientHeight);
    if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
    if (canvas.height !== Math.round(hgt * dpr)) canvas.height = Math.round(hgt * dpr);
    const c = canvas.getContext('2d');
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, w, hgt);
    let max = 1;
    for (let k = 0; k < WINDOW_S; k++) max = Math.max(max, ok[k], bad[k]);
    const pad = { l: 36, r: 6, t: 8, b: 18 };
    const x = (k) => pad.l + (k / (WINDOW_S - 1)) * (w - pad.l - pad.r);
    const y = (v) => hgt - pad.b - (v / max) * (hgt - pad.t - pad.b);
    c.strokeStyle = '#d0d7de'; c.fillStyle = '#57606a'; c.lineWidth = 1; c.font = '11px system-ui, sans-serif';
    c.beginPath(); c.moveTo(pad.l, y(0)); c.lineTo(w - pad.r, y(0)); c.moveTo(pad.l, y(max)); c.lineTo(w - pad.r, y(max)); c.stroke();
    c.fillText(String(Math.round(max * 10) / 10), 2, y(max) + 4);
    c.fillText('0', 2, y(0) + 4);
    c.fillText('−15 min', pad.l, hgt - 4);
    c.fillText('now', w - pad.r - 22, hgt - 4);
    for (const [series, colour] of [[ok, '#116329'], [bad, '#a40e26']]) {
      c.strokeStyle = colour; c.lineWidth = 1.5; c.beginPath();
      for (let k = 0; k < WINDOW_S; k++) { if (k) c.lineTo(x(k), y(series[k])); else c.moveTo(x(k), y(series[k])); }
      c.stroke();
    }
    let okMin = 0, badMin = 0;
    for (let k = WINDOW_S - 60; k < WINDOW_S; k++) { okMin += ok[k]; badMin += bad[k]; }
    const txt = 'Last minute: ' + (okMin / 60).toFixed(2) + ' completed/s, ' + (badMin / 60).toFixed(2) + ' failed/s.';
    setText(summary, txt);
    canvas.setAttribute('aria-label', 'Throughput over the last 15 minutes. ' + txt);
    TP.dirty = false;
  }

  // ---------- live events ----------
  function setMode(mode, why) {
    S.mode = mode;
    const el = $('#live');
    el.dataset.state = mode;
    const text = {
      live: 'live', reconnecting: 'reconnecting…', polling: 'polling (no event stream)',
      offline: 'API unreachable, retrying', connecting: 'connecting…',
    }[mode] || mode;
    setText($('#live-text'), why ? text + ': ' + why : text);
  }
  function connectEvents() {
    clearTimeout(S.retryTimer);
    if (S.es) S.es.close();
    const es = new EventSource(API + 'events' + (S.token ? '?access_token=' + encodeURIComponent(S.token) : ''));
    S.es = es;
    es.onopen = () => {
      const wasDown = S.everLive && S.mode !== 'live';
      S.everLive = true; S.retryMs = 1000;
      setMode('live');
      if (wasDown) refreshView(); // the API (or our connection) restarted: reload what we show
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) { es.close(); if (S.es === es) S.es = null; probeEvents(); }
      else if (S.mode === 'live') setMode('reconnecting');
    };
    const on = (e) => onEvent(e);
    for (const t of EVENT_TYPES) es.addEventListener(t, on);
    es.onmessage = on;
  }
  // The EventSource gave up: find out why (no stream in this API, token refused, API down).
  async function probeEvents() {
    const ctrl = new AbortController();
    let status = 0;
    try {
      const r = await fetch(API + 'events' + (S.token ? '?access_token=' + encodeURIComponent(S.token) : ''),
        { headers: headers({ Accept: 'text/event-stream' }), signal: ctrl.signal, cache: 'no-store' });
      status = r.status;
    } catch (e) { status = 0; }
    ctrl.abort();
    let wait = S.retryMs;
    if (status === 404 || status === 405) { setMode('polling'); wait = 30000; } // maybe the API gets upgraded
    else if (status === 401 || status === 403) { setMode('offline', 'token refused'); wait = 30000; }
    else { setMode(S.everLive ? 'reconnecting' : 'offline'); S.retryMs = Math.min(S.retryMs * 2, 15000); }
    S.retryTimer = setTimeout(connectEvents, wait);
  }
  function onEvent(e) {
    let d;
    try { d = JSON.parse(e.data); } catch (err) { return; }
    if (!d || typeof d !== 'object') return;
    d.event = e.type === 'message' ? (d.event || d.type || 'message') : e.type;
    S.pending.push(d);
    if (!S.flushQueued) {
      S.flushQueued = true;
      // One DOM pass per frame however many events arrived; hidden tabs get no frames.
      if (document.hidden) setTimeout(flush, 1000); else requestAnimationFrame(flush);
    }
  }
  function flush() {
    S.flushQueued = false;
    const batch = S.pending;
    S.pending = [];
    for (const d of batch) {
      const sec = Math.floor(parseTime(d.timestamp) / 1000);
      if (d.event === 'task-succeeded') tpAdd('ok', sec, 1);
      else if (d.event === 'task-failed') tpAdd('bad', sec, 1);
    }
    if (S.view && S.view.onEvents) S.view.onEvents(batch);
  }
  // Polls the view while no event stream feeds it, and refreshes slow-changing panels.
  setInterval(() => { if (S.view && S.view.tick) S.view.tick(S.mode !== 'live'); }, 1000);
  function refreshView() { if (S.view && S.view.refresh) S.view.refresh(); }
  // Calls fn at most once per `ms`, the last call winning.
  function throttle(fn, ms) {
    let timer = null, last = 0;
    return () => {
      if (timer) return;
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
    };
  }

  // ---------- views ----------
  function heading(text) { return h('h1', { id: 'page-title', tabindex: '-1' }, text); }

  function overviewView(main) {
    const v = { alive: true };
    const qt = table('Queues', ['Queue', 'Ready', 'Delayed', 'Running', 'Paused', 'Dead', 'State', { t: 'Oldest ready', cls: 'hide-narrow' }, { t: 'Workers', cls: 'hide-narrow' }]);
    const qBox = h('div', null, qt.el);
    const canvas = h('canvas', { class: 'chart', role: 'img', 'aria-label': 'Throughput chart' });
    const summary = h('p', { class: 'muted' });
    const wBox = h('div', { class: 'cards' }, h('span', { class: 'muted' }, 'Loading…'));
    main.append(heading('Overview'), h('div', { class: 'grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'h-tp' }, h('h2', { id: 'h-tp' }, 'Throughput (per second, 15 min)'), canvas,
        h('div', { class: 'legend' }, h('span', { class: 'ok' }, 'completed'), h('span', { class: 'bad' }, 'failed')), summary),
      h('section', { class: 'panel', 'aria-labelledby': 'h-w' }, h('h2', { id: 'h-w' }, h('a', { href: '#/workers' }, 'Workers')), wBox)),
    h('section', { class: 'panel', 'aria-labelledby': 'h-q' }, h('h2', { id: 'h-q' }, h('a', { href: '#/queues' }, 'Queues')), qBox));

    async function loadQueues() {
      const r = await api('GET', 'queues');
      if (!v.alive) return;
      if (!r.ok) { if (stale(qBox, r)) return; fill(qBox, unavailable('The queue list', r)); return; }
      const qs = asList(r.data, 'queues');
      tpSeed(qs);
      if (!qBox.contains(qt.el)) fill(qBox, qt.el);
      setText(qt.caption, qs.length ? qs.length + ' queue(s)' : 'No queue has received a task yet.');
      syncRows(qt.tbody, qs, qName, (q) => h('tr', { 'data-queue': qName(q) },
        h('th', { scope: 'row' }, h('a', { href: '#/tasks?queue=' + encodeURIComponent(qName(q)) }, qName(q))),
        h('td'), h('td'), h('td'), h('td'), h('td'), h('td', { class: 'qstate' }), h('td', { class: 'hide-narrow' }), h('td', { class: 'hide-narrow' })),
      (tr, q) => {
        const c = tr.children;
        [q.ready, q.delayed, q.running, q.paused, q.dead].forEach((n, i) => setText(c[i + 1], num(n)));
        if (typeof q.is_paused === 'boolean') setBadge(c[6], q.is_paused ? 'paused' : 'active'); else setText(c[6], dash);
        setText(c[7], typeof q.oldest_ready_age_s === 'number' ? q.oldest_ready_age_s.toFixed(1) + ' s' : dash);
        setText(c[8], num(q.workers));
      });
    }
    async function loadWorkers() {
      const r = await api('GET', 'workers');
      if (!v.alive) return;
      if (!r.ok) { if (stale(wBox, r)) return; fill(wBox, unavailable('The worker list', r)); return; }
      const ws = asList(r.data, 'workers');
      const count = (s) => ws.filter((w) => w.status === s).length;
      fill(wBox, 
        h('div', { class: 'card' }, h('b', { class: 's-ONLINE' }, count('ONLINE')), 'online'),
        h('div', { class: 'card' }, h('b', { class: 's-NOT_RESPONDING' }, count('NOT_RESPONDING')), 'not responding'),
        h('div', { class: 'card' }, h('b', { class: 's-STOPPED' }, count('STOPPED')), 'stopped'));
    }
    const reloadQueues = throttle(loadQueues, 1000);
    const reloadWorkers = throttle(loadWorkers, 2000);
    let ticks = 0;
    v.refresh = () => Promise.all([loadQueues(), loadWorkers()]);
    v.onEvents = (batch) => {
      if (batch.some((d) => d.event.startsWith('task-'))) reloadQueues();
      if (batch.some((d) => d.event.startsWith('worker-'))) reloadWorkers();
    };
    v.tick = (polling) => {
      ticks++;
      drawChart(canvas, summary); // the window slides every second
      // Delayed tasks fall due without an event: a slow refresh even when live.
      if (ticks % (polling ? 2 : 10) === 0) loadQueues();
      if (ticks % 5 === 0) loadWorkers(); // heartbeats age without events
    };
    v.unmount = () => { v.alive = false; window.removeEventListener('resize', onResize); };
    const onResize = throttle(() => drawChart(canvas, summary), 200);
    window.addEventListener('resize', onResize);
    v.refresh().then(() => { if (v.alive) { drawChart(canvas, summary); markRendered('overview'); } });
    return v;
  }

  function tasksView(main, query) {
    const v = { alive: true };
    const p = new URLSearchParams(query || '');
    const f = { status: p.get('status') || '', queue: p.get('queue') || '', name: p.get('name') || '', worker: p.get('worker') || '' };
    const limit = Math.min(500, Math.max(1, parseInt(p.get('limit') || '50', 10) || 50));
    let cursor = null;
    const back = []; // cursors of the pages before this one
    const field = (id, label, el) => h('label', { for: id }, label, el);
    const statusSel = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'any'),
      STATUSES.map((s) => h('option', { value: s, selected: f.status === s }, s)));
    const inp = (id, name) => h('input', { id, name, value: f[name], autocomplete: 'off', spellcheck: 'false' });
    const form = h('form', { class: 'filters', 'aria-label': 'Filters' },
      field('f-status', 'Status', statusSel), field('f-queue', 'Queue', inp('f-queue', 'queue')),
      field('f-name', 'Task name', inp('f-name', 'name')), field('f-worker', 'Worker', inp('f-worker', 'worker')),
      h('button', { type: 'submit' }, 'Apply'), h('button', { type: 'button', onclick: () => { location.hash = '#/tasks'; } }, 'Clear'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const k of ['status', 'queue', 'name', 'worker']) { const val = form.elements[k].value.trim(); if (val) q.set(k, val); }
      const s = q.toString();
      location.hash = '#/tasks' + (s ? '?' + s : '');
    });
    const t = table('Tasks, newest first', ['Task', 'Name', 'Queue', 'Status', 'Worker', 'Created', { t: 'Started', cls: 'hide-narrow' }, { t: 'Finished', cls: 'hide-narrow' }]);
    const note = h('div');
    const prev = h('button', { type: 'button', disabled: true, onclick: () => { cursor = back.pop() ?? null; load(); } }, '← Newer');
    const next = h('button', { type: 'button', disabled: true }, 'Older →');
    let nextCursor = null;
    next.addEventListener('click', () => { if (nextCursor) { back.push(cursor); cursor = nextCursor; load(); } });
    const pageInfo = h('span', { class: 'muted' });
    main.append(heading('Tasks'), form, note, t.el, h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, next, pageInfo));

    const rows = new Map(); // task id -> row record (what the row shows)
    let listed = true;
    function build(task) {
      return h('tr', { 'data-id': task.task_id },
        h('td', null, taskLink(task.task_id)), h('td', { class: 'wrap' }), h('td'), h('td', { class: 'status' }), h('td'),
        h('td'), h('td', { class: 'hide-narrow' }), h('td', { class: 'hide-narrow' }));
    }
    function update(tr, task) {
      const c = tr.children;
      setText(c[1], task.name || dash);
      setText(c[2], task.queue || dash);
      // A changed status flashes the row (an animation, so no forced layout per row).
      if (setBadge(c[3], task.status) && tr.dataset.shown && tr.animate) tr.animate([{ backgroundColor: '#fff8c5' }, { backgroundColor: 'transparent' }], 800);
      tr.dataset.shown = '1';
      const w = task.worker;
      if ((c[4].textContent || '') !== (w || dash)) fill(c[4], w ? h('a', { href: '#/workers' }, w) : dash);
      setText(c[5], fmtTime(task.created_at));
      setText(c[6], fmtTime(task.started_at));
      setText(c[7], fmtTime(task.finished_at));
    }
    function render() {
      const list = [...rows.values()];
      syncRows(t.tbody, list, (x) => x.task_id, build, update);
      setText(t.caption, list.length ? 'Tasks, newest first' : (listed ? 'No task matches.' : 'No task seen yet.'));
    }
    async function load() {
      const q = new URLSearchParams();
      for (const [k, val] of Object.entries(f)) if (val) q.set(k, val);
      q.set('limit', String(limit));
      q.set('expand', 'true');
      if (cursor) q.set('cursor', cursor);
      const r = await api('GET', 'tasks?' + q.toString());
      if (!v.alive) return;
      if (!r.ok) {
        listed = false;
        fill(note, unavailable('The task list', r),
          h('p', { class: 'muted' }, 'Open a task with the id box at the top. Tasks announced by the event stream appear below.'));
        render();
        markRendered('tasks');
        return;
      }
      listed = true;
      fill(note, );
      let items = asList(r.data, 'tasks');
      if (items.some((x) => typeof x === 'string')) {
        // An API without `expand`: fetch each record (one page, so at most `limit` requests).
        items = await Promise.all(items.map(async (x) => {
          if (typeof x !== 'string') return x;
          const one = await api('GET', 'tasks/' + encodeURIComponent(x));
          return one.ok ? one.data : { task_id: x, status: '?' };
        }));
        if (!v.alive) return;
      }
      rows.clear();
      for (const x of items) if (x && x.task_id) rows.set(x.task_id, x);
      nextCursor = (r.data && r.data.next_cursor) || null;
      next.disabled = !nextCursor;
      prev.disabled = back.length === 0;
      setText(pageInfo, 'page ' + (back.length + 1));
      render();
      markRendered('tasks');
    }
    const matches = (d) => (!f.queue || d.queue === f.queue) && (!f.name || d.name === f.name) && !f.worker &&
      (!f.status || f.status.toUpperCase().split(',').includes('PENDING'));
    const refetch = new Set();
    const refetchSoon = throttle(async () => {
      const ids = [...refetch]; refetch.clear();
      for (const id of ids.slice(0, 10)) {
        const one = await api('GET', 'tasks/' + encodeURIComponent(id));
        if (!v.alive) return;
        if (one.ok && rows.has(id)) { rows.set(id, one.data); }
      }
      render();
    }, 1000);
    v.onEvents = (batch) => {
      let changed = false;
      for (const d of batch) {
        if (!d.task_id) continue;
        const cur = rows.get(d.task_id);
        const status = d.status || EVENT_STATUS[d.event];
        if (cur) {
          const upd = { ...cur };
          if (status && d.event !== 'task-progress') upd.status = status;
          if (d.event === 'task-started' && d.worker) upd.worker = d.worker;
          if (d.event === 'task-started') upd.started_at = d.timestamp ?? upd.started_at;
          if (status && FINAL.has(status)) { upd.finished_at = d.timestamp ?? upd.finished_at; refetch.add(d.task_id); }
          rows.set(d.task_id, upd);
          changed = true;
        } else if (d.event === 'task-sent' && !cursor && matches(d)) {
          // Newest first: a new task goes on top and the oldest row drops off.
          const fresh = new Map([[d.task_id, { task_id: d.task_id, name: d.name, queue: d.queue, status: 'PENDING', created_at: d.timestamp }]]);
          for (const [k, val] of rows) { if (fresh.size >= limit) break; fresh.set(k, val); }
          rows.clear();
          for (const [k, val] of fresh) rows.set(k, val);
          changed = true;
        }
      }
      if (changed) render();
      if (refetch.size) refetchSoon();
    };
    let ticks = 0;
    v.tick = (polling) => { ticks++; if (polling && listed && ticks % 2 === 0) load(); };
    v.refresh = load;
    v.unmount = () => { v.alive = false; };
    load();
    return v;
  }

  function progressOf(p) {
    if (p == null) return null;
    if (typeof p === 'number') return { value: p <= 1 ? p * 100 : p, max: 100, text: '' };
    if (typeof p === 'object') {
      if (typeof p.current === 'number' && typeof p.total === 'number' && p.total > 0) {
        return { value: p.current, max: p.total, text: p.current + ' / ' + p.total + (p.message ? ' — ' + p.message : '') };
      }
      if (typeof p.percent === 'number') return { value: p.percent, max: 100, text: (p.message || '') };
    }
    return null;
  }

  function taskView(main, id) {
    const v = { alive: true };
    id = decodeURIComponent(id);
    const status = h('span', { id: 'task-status' });
    const answer = h('p', { id: 'answer', class: 'answer', role: 'status', 'aria-live': 'polite' });
    const buttons = {};
    const enc = encodeURIComponent(id);
    const ops = [
      ['cancel', 'Cancel', 'POST', 'tasks/' + enc + '/cancel', (s) => ['PENDING', 'STARTED', 'RETRY', 'PAUSED'].includes(s), (r) => (r.status === 202 ? 'cancellation requested; the task ends REVOKED when it stops' : 'revoked')],
      ['retry', 'Retry', 'POST', 'tasks/' + enc + '/retry', (s) => s === 'FAILURE' || s === 'REVOKED', () => 'queued again'],
      ['pause', 'Pause', 'POST', 'tasks/' + enc + '/pause', (s) => s === 'PENDING' || s === 'RETRY', () => 'paused'],
      ['resume', 'Resume', 'POST', 'tasks/' + enc + '/resume', (s) => s === 'PAUSED', () => 'resumed'],
      ['delete', 'Delete', 'DELETE', 'tasks/' + enc, (s) => FINAL.has(s), () => 'record deleted'],
    ];
    for (const [key, label, method, path, , okText] of ops) {
      buttons[key] = h('button', { type: 'button', 'data-action': key, class: key === 'delete' || key === 'cancel' ? 'danger' : null, disabled: true },
        label);
      buttons[key].addEventListener('click', async () => {
        for (const b of Object.values(buttons)) b.disabled = true;
        await act(answer, label, method, path, okText);
        if (v.alive) load();
      });
    }
    const prog = h('div');
    const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    const wf = h('div');
    main.append(heading('Task ' + id), h('p', null, 'Status: ', status), h('div', { class: 'actions', role: 'group', 'aria-label': 'Task actions' },
      Object.values(buttons)), answer, prog, body, wf);
    let last = null;
    let wfLoaded = null;
    async function load() {
      const r = await api('GET', 'tasks/' + enc);
      if (!v.alive) return;
      if (!r.ok) {
        last = null;
        fill(status, badge(r.status === 404 ? 'not found' : 'error'));
        fill(body, h('p', { class: 'na' }, r.status === 404 ? 'No task with this id (never created, deleted, or its record expired).' : errText(r)));
        for (const [key] of ops) buttons[key].disabled = true;
        markRendered('task');
        return;
      }
      const t = r.data;
      last = t;
      fill(status, badge(t.status));
      for (const [key, , , , allowed] of ops) buttons[key].disabled = !allowed(t.status);
      const pr = progressOf(t.progress);
      fill(prog, ...(pr ? [h('label', { for: 'task-progress' }, 'Progress '), h('progress', { id: 'task-progress', max: pr.max, value: pr.value }, pr.text),
        ' ', h('span', { class: 'muted' }, pr.text || Math.round((pr.value / pr.max) * 100) + ' %')] : []));
      const order = ['task_id', 'name', 'queue', 'status', 'args', 'result', 'traceback', 'attempts', 'retries', 'max_retries', 'errors', 'priority',
        'progress', 'parent_id', 'children', 'workflow_id', 'worker', 'created_at', 'eta', 'started_at', 'finished_at', 'expires_at', 'cancel_requested', 'options'];
      const keys = [...order.filter((k) => k in t), ...Object.keys(t).filter((k) => !order.includes(k))];
      const dl = h('dl', { class: 'fields' });
      for (const k of keys) {
        const val = t[k];
        let dd;
        if (k === 'parent_id' && val) dd = taskLink(val, val);
        else if (k === 'children') dd = Array.isArray(val) && val.length ? h('ul', null, val.map((c) => h('li', null, taskLink(typeof c === 'string' ? c : c.task_id, typeof c === 'string' ? c : c.task_id)))) : dash;
        else if (k === 'status') dd = badge(val);
        else if (k === 'worker' && val) dd = h('a', { href: '#/workers' }, val);
        else if (k === 'traceback') dd = val ? h('pre', null, val) : dash;
        else if (/_at$|^eta$/.test(k)) dd = val ? h('span', null, timeCell(val), ' ', h('span', { class: 'muted' }, '(' + ago(val) + ')')) : dash;
        else if (val !== null && typeof val === 'object') dd = h('pre', null, json(val));
        else dd = val == null ? dash : String(val);
        dl.append(h('dt', null, k), h('dd', { 'data-field': k }, dd));
      }
      fill(body, dl);
      if (t.workflow_id && wfLoaded !== t.workflow_id) { wfLoaded = t.workflow_id; loadWorkflow(t.workflow_id); }
      markRendered('task');
    }
    async function loadWorkflow(wid) {
      const r = await api('GET', 'workflows/' + encodeURIComponent(wid));
      if (!v.alive) return;
      if (!r.ok) { fill(wf, h('h2', null, 'Workflow'), unavailable('The workflow', r)); return; }
      const w = r.data;
      fill(wf, h('h2', null, 'Workflow ', h('span', { class: 'mono' }, wid)),
        h('p', null, (w.kind || '') + ' ', badge(w.status), ' ' + (w.done ?? '?') + ' / ' + (w.total ?? '?') + ' done, ' + (w.failed ?? 0) + ' failed'),
        h('ol', null, (w.task_ids || []).map((x) => h('li', null, taskLink(x, x), x === id ? ' (this task)' : ''))),
        w.callback_id ? h('p', null, 'Callback: ', taskLink(w.callback_id, w.callback_id)) : null);
    }
    const reload = throttle(load, 250);
    v.onEvents = (batch) => { if (batch.some((d) => d.task_id === id)) reload(); };
    let ticks = 0;
    v.tick = (polling) => {
      ticks++;
      // Without events, poll while the task can still change; with events, a slow safety poll.
      if (last && !FINAL.has(last.status) && (polling || ticks % 5 === 0)) load();
    };
    v.refresh = load;
    v.unmount = () => { v.alive = false; };
    load();
    return v;
  }

  function workersView(main) {
    const v = { alive: true };
    const t = table('Workers', ['Worker', 'Host', 'PID', 'Queues', 'Conc.', 'Status', 'Last heartbeat', 'Active', 'Reserved', 'Processed', { t: 'Version', cls: 'hide-narrow' }, { t: 'Started', cls: 'hide-narrow' }]);
    const box = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    main.append(heading('Workers'), box);
    const taskList = (xs) => (Array.isArray(xs) && xs.length ? h('ul', null, xs.map((a) => {
      const tid = typeof a === 'string' ? a : a.task_id;
      return h('li', null, taskLink(tid), a.name ? ' ' + a.name : '', typeof a.runtime_s === 'number' ? ' (' + a.runtime_s.toFixed(1) + ' s)' : '');
    })) : dash);
    async function load() {
      const r = await api('GET', 'workers');
      if (!v.alive) return;
      markRendered('workers');
      if (!r.ok) { if (stale(box, r)) return; fill(box, unavailable('The worker list', r)); return; }
      const ws = asList(r.data, 'workers');
      if (!box.contains(t.el)) fill(box, t.el);
      setText(t.caption, ws.length + ' worker(s)');
      syncRows(t.tbody, ws, (w) => w.name, (w) => h('tr', { 'data-worker': w.name }, h('th', { scope: 'row', class: 'mono' }, w.name),
        ...Array.from({ length: 11 }, (_, i) => h('td', { class: i >= 9 ? 'hide-narrow' : i === 6 || i === 7 ? 'wrap' : null }))),
      (tr, w) => {
        const c = tr.children;
        setText(c[1], w.hostname ?? dash); setText(c[2], w.pid ?? dash);
        setText(c[3], Array.isArray(w.queues) ? w.queues.join(', ') : dash); setText(c[4], w.concurrency ?? dash);
        setBadge(c[5], w.status);
        setText(c[6], w.last_heartbeat ? ago(w.last_heartbeat) : dash);
        fill(c[7], taskList(w.active)); fill(c[8], taskList(w.reserved));
        setText(c[9], num(w.processed)); setText(c[10], w.version ?? dash); setText(c[11], fmtTime(w.started_at));
      });
    }
    const reload = throttle(load, 1000);
    v.onEvents = (batch) => { if (batch.some((d) => d.event.startsWith('worker-') || d.event === 'task-started' || FINAL.has(EVENT_STATUS[d.event]))) reload(); };
    let ticks = 0;
    v.tick = (polling) => { ticks++; if (ticks % (polling ? 2 : 5) === 0) load(); };
    v.refresh = load;
    v.unmount = () => { v.alive = false; };
    load();
    return v;
  }

  function queuesView(main) {
    const v = { alive: true };
    const answer = h('p', { id: 'queue-answer', class: 'answer', role: 'status', 'aria-live': 'polite' });
    const t = table('Queues', ['Queue', 'Ready', 'Delayed', 'Running', 'Paused', 'Dead', 'State', { t: 'Oldest ready', cls: 'hide-narrow' }, { t: 'Workers', cls: 'hide-narrow' }, { t: 'In/min', cls: 'hide-narrow' }, { t: 'Done/min', cls: 'hide-narrow' }, 'Actions']);
    const box = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    const dl = table('Dead-lettered tasks (given up after too many lost deliveries)', ['Task', 'Name', 'Queue', 'Attempts', 'Finished', 'Action']);
    const dlBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    let dlCursor = null, dlNext = null;
    const dlBack = [];
    const dlPrev = h('button', { type: 'button', disabled: true, onclick: () => { dlCursor = dlBack.pop() ?? null; loadDead(); } }, '← Newer');
    const dlMore = h('button', { type: 'button', disabled: true, onclick: () => { if (dlNext) { dlBack.push(dlCursor); dlCursor = dlNext; loadDead(); } } }, 'Older →');
    main.append(heading('Queues'), answer, box, h('h2', null, 'Dead letter'), dlBox);
    const confirming = new Set();
    const qs = new Map();
    function actions(td, q) {
      const name = qName(q);
      const enc = encodeURIComponent(name);
      if (confirming.has(name)) {
        delete td.dataset.paused; // the next refresh redraws the buttons
        const n = (q.ready || 0) + (q.delayed || 0);
        const keep = h('button', { type: 'button', onclick: () => { confirming.delete(name); actions(td, qs.get(name) || q); td.querySelector('[data-action=purge]')?.focus(); } }, 'Keep');
        fill(td, h('span', { role: 'alert' }, 'Purge ' + n + ' ready and delayed task(s) of ' + name + '? '),
          h('button', { type: 'button', class: 'danger', 'data-action': 'purge-confirm', onclick: async () => {
            confirming.delete(name);
            await act(answer, 'purge ' + name, 'DELETE', 'queues/' + enc + '/tasks', (r) => (r.data && typeof r.data.purged === 'number' ? r.data.purged + ' task(s) purged' : 'purged'));
            load();
          } }, 'Yes, purge'), ' ', keep);
        keep.focus();
        return;
      }
      const op = (key, label, method, path, okText) => h('button', { type: 'button', 'data-action': key, onclick: async () => {
        await act(answer, label + ' ' + name, method, path, okText);
        load();
      } }, label);
      td.dataset.paused = String(q.is_paused);
      fill(td, 
        q.is_paused === true ? op('resume', 'Resume', 'POST', 'queues/' + enc + '/resume', 'queue resumed') : op('pause', 'Pause', 'POST', 'queues/' + enc + '/pause', 'queue paused: no worker claims from it'),
        ' ',
        q.is_paused == null ? op('resume', 'Resume', 'POST', 'queues/' + enc + '/resume', 'queue resumed') : null, q.is_paused == null ? ' ' : null,
        h('button', { type: 'button', class: 'danger', 'data-action': 'purge', onclick: () => { confirming.add(name); actions(td, qs.get(name) || q); } }, 'Purge…'));
    }
    async function load() {
      const r = await api('GET', 'queues');
      if (!v.alive) return;
      markRendered('queues');
      if (!r.ok) { if (stale(box, r)) return; fill(box, unavailable('The queue list', r)); return; }
      const list = asList(r.data, 'queues');
      qs.clear();
      for (const q of list) qs.set(qName(q), q);
      if (!box.contains(t.el)) fill(box, t.el);
      setText(t.caption, list.length ? list.length + ' queue(s)' : 'No queue has received a task yet.');
      syncRows(t.tbody, list, qName, (q) => h('tr', { 'data-queue': qName(q) },
        h('th', { scope: 'row' }, h('a', { href: '#/tasks?queue=' + encodeURIComponent(qName(q)) }, qName(q))),
        ...Array.from({ length: 11 }, (_, i) => h('td', { class: i === 5 ? 'qstate' : i >= 6 && i <= 9 ? 'hide-narrow' : i === 10 ? 'qactions' : null }))),
      (tr, q) => {
        const c = tr.children;
        [q.ready, q.delayed, q.running, q.paused, q.dead].forEach((n, i) => setText(c[i + 1], num(n)));
        if (typeof q.is_paused === 'boolean') setBadge(c[6], q.is_paused ? 'paused' : 'active'); else setText(c[6], dash);
        setText(c[7], typeof q.oldest_ready_age_s === 'number' ? q.oldest_ready_age_s.toFixed(1) + ' s' : dash);
        setText(c[8], num(q.workers)); setText(c[9], num(q.enqueued_last_min)); setText(c[10], num(q.completed_last_min));
        const td = c[11];
        if (!confirming.has(qName(q)) && td.dataset.paused !== String(q.is_paused)) actions(td, q);
      });
    }
    async function loadDead() {
      const q = new URLSearchParams({ limit: '50', expand: 'true' });
      if (dlCursor) q.set('cursor', dlCursor);
      const r = await api('GET', 'dead-letter?' + q.toString());
      if (!v.alive) return;
      if (!r.ok) { if (stale(dlBox, r)) return; fill(dlBox, unavailable('The dead-letter list', r)); return; }
      let items = asList(r.data, 'tasks');
      items = items.map((x) => (typeof x === 'string' ? { task_id: x } : x));
      dlNext = (r.data && r.data.next_cursor) || null;
      dlMore.disabled = !dlNext; dlPrev.disabled = dlBack.length === 0;
      if (!dlBox.contains(dl.el)) fill(dlBox, dl.el, h('nav', { class: 'pager', 'aria-label': 'Dead-letter pages' }, dlPrev, dlMore));
      setText(dl.caption, items.length ? 'Dead-lettered tasks' : 'No dead-lettered task.');
      syncRows(dl.tbody, items, (x) => x.task_id, (x) => {
        const btn = h('button', { type: 'button', 'data-action': 'requeue', onclick: async () => {
          await act(answer, 'requeue ' + shortId(x.task_id), 'POST', 'dead-letter/' + encodeURIComponent(x.task_id) + '/requeue', 'queued again');
          loadDead(); load();
        } }, 'Requeue');
        return h('tr', { 'data-id': x.task_id }, h('td', null, taskLink(x.task_id)), h('td'), h('td'), h('td'), h('td'), h('td', null, btn));
      }, (tr, x) => {
        const c = tr.children;
        setText(c[1], x.name ?? dash); setText(c[2], x.queue ?? dash); setText(c[3], x.attempts ?? dash); setText(c[4], fmtTime(x.finished_at));
      });
    }
    const reload = throttle(load, 1000);
    v.onEvents = (batch) => { if (batch.some((d) => d.event.startsWith('task-'))) reload(); };
    let ticks = 0;
    v.tick = (polling) => { ticks++; if (ticks % (polling ? 2 : 10) === 0) load(); if (ticks % 10 === 0) loadDead(); };
    v.refresh = () => Promise.all([load(), loadDead()]);
    v.unmount = () => { v.alive = false; };
    v.refresh();
    return v;
  }

  function schedulesView(main) {
    const v = { alive: true };
    const answer = h('p', { class: 'answer', role: 'status', 'aria-live': 'polite' });
    const t = table('Schedules', ['Schedule', 'Task', 'Rule', 'Next run', 'Last run', 'State', 'Actions']);
    const box = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    main.append(heading('Schedules'), answer, box);
    async function load() {
      const r = await api('GET', 'schedules');
      if (!v.alive) return;
      markRendered('schedules');
      if (!r.ok) { if (stale(box, r)) return; fill(box, unavailable('Schedules', r)); return; }
      const list = asList(r.data, 'schedules');
      if (!box.contains(t.el)) fill(box, t.el);
      setText(t.caption, list.length ? list.length + ' schedule(s)' : 'No schedule.');
      syncRows(t.tbody, list, (s) => s.name, (s) => h('tr', { 'data-schedule': s.name }, h('th', { scope: 'row' }, s.name),
        h('td'), h('td', { class: 'mono' }), h('td'), h('td'), h('td'), h('td')),
      (tr, s) => {
        const c = tr.children;
        const enc = encodeURIComponent(s.name);
        setText(c[1], s.task ?? s.name ?? dash);
        const rule = s.cron ?? s.schedule ?? (s.every_s != null ? 'every ' + s.every_s + ' s' : s.interval_s != null ? 'every ' + s.interval_s + ' s' : s.every ?? dash);
        setText(c[2], typeof rule === 'object' ? JSON.stringify(rule) : rule);
        setText(c[3], s.next_run_at ? fmtTime(s.next_run_at) + ' (' + ago(s.next_run_at) + ')' : dash);
        setText(c[4], s.last_run_at ? fmtTime(s.last_run_at) + ' (' + ago(s.last_run_at) + ')' : dash);
        setBadge(c[5], s.paused ? 'paused' : 'active');
        if (c[6].dataset.paused !== String(!!s.paused)) {
          c[6].dataset.paused = String(!!s.paused);
          const op = (key, label, okText) => h('button', { type: 'button', 'data-action': key, onclick: async () => {
            await act(answer, label + ' ' + s.name, 'POST', 'schedules/' + enc + '/' + key, okText);
            load();
          } }, label);
          fill(c[6], s.paused ? op('resume', 'Resume', 'schedule resumed') : op('pause', 'Pause', 'schedule paused'), ' ', op('run', 'Run now', 'task enqueued'));
        }
      });
    }
    let ticks = 0;
    v.tick = () => { ticks++; if (ticks % 5 === 0) load(); };
    v.refresh = load;
    v.unmount = () => { v.alive = false; };
    load();
    return v;
  }

  function notFoundView(main) {
    main.append(heading('Not found'), h('p', null, 'No such page. ', h('a', { href: '#/' }, 'Go to the overview.')));
    return {};
  }

  // ---------- router ----------
  const ROUTES = [
    [/^#?\/?$/, 'overview', overviewView],
    [/^#\/tasks(?:\?(.*))?$/, 'tasks', tasksView],
    [/^#\/task\/([^/?#]+)$/, 'tasks', taskView],
    [/^#\/workers\/?$/, 'workers', workersView],
    [/^#\/queues\/?$/, 'queues', queuesView],
    [/^#\/schedules\/?$/, 'schedules', schedulesView],
  ];
  let firstRoute = true;
  function route() {
    if (S.view && S.view.unmount) S.view.unmount();
    const hash = location.hash || '#/';
    let found = null, m = null;
    for (const r of ROUTES) { m = hash.match(r[0]); if (m) { found = r; break; } }
    const main = $('#view');
    fill(main, );
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (found && a.dataset.nav === found[1]) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    S.view = found ? found[2](main, m[1]) : notFoundView(main);
    const title = $('#page-title');
    document.title = (title ? title.textContent + ' · ' : '') + 'celeriac';
    // Move focus to the new page's heading for keyboard and screen-reader users (not on first load).
    if (!firstRoute && title) title.focus({ preventScroll: true });
    firstRoute = false;
  }

  // ---------- header: jump box, token, keys ----------
  $('#jump').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('#jump-id').value.trim();
    if (id) location.hash = '#/task/' + encodeURIComponent(id);
  });
  $('#token').value = S.token;
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    S.token = $('#token').value.trim();
    if (S.token) sessionStorage.setItem(TOKEN_KEY, S.token); else sessionStorage.removeItem(TOKEN_KEY);
    toast(S.token ? 'Token saved for this browser tab.' : 'Token cleared.');
    connectEvents();
    refreshView();
  });
  let gPressed = 0;
  document.addEventListener('keydown', (e) => {
    const tag = (e.target && e.target.tagName) || '';
    if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|SELECT|TEXTAREA)$/.test(tag)) return;
    if (e.key === '/') { e.preventDefault(); $('#jump-id').focus(); return; }
    if (e.key === 'g') { gPressed = Date.now(); return; }
    if (Date.now() - gPressed < 1500) {
      const to = { o: '#/', t: '#/tasks', w: '#/workers', q: '#/queues', s: '#/schedules' }[e.key];
      gPressed = 0;
      if (to) { e.preventDefault(); location.hash = to; }
    }
  });

  // For the browser test's load check: feeds synthetic events through the same path as the stream.
  window.__celeriac = { inject: (type, data) => onEvent({ type, data: JSON.stringify(data) }) };

  window.addEventListener('hashchange', route);
  route();
  connectEvents();
})();
