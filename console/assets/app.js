// weft console: a single-page app over the control plane's JSON API.
// No framework and no build step: DOM and SVG by hand. The graph is
// updated in place (keyed by node and edge ID) so elements, and the
// data-edge / data-node hooks tests hold on to, survive refreshes.
'use strict';

(function () {
  const SVGNS = 'http://www.w3.org/2000/svg';
  const $ = (sel) => document.querySelector(sel);
  const views = ['graph', 'services', 'workloads', 'config', 'traces', 'canaries'];

  const state = {
    view: 'graph',
    graph: null,          // last /api/v1/graph answer
    selected: null,       // selected node or edge ID
    inflight: {},
    tick: 0,
    nodeEls: new Map(),   // node ID -> <g>
    edgeEls: new Map(),   // edge ID -> <g>
  };

  // ---- API ----------------------------------------------------------

  async function api(path) {
    const resp = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    if (resp.status === 401) {
      location.href = '/login';
      throw new Error('not logged in');
    }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  }

  // once runs f unless a call with the same key is still in flight, so a
  // slow control plane is not buried under overlapping refreshes.
  async function once(key, f) {
    if (state.inflight[key]) return;
    state.inflight[key] = true;
    try {
      await f();
      setStatus('updated ' + new Date().toLocaleTimeString(), false);
    } catch (err) {
      setStatus(String(err.message || err), true);
    } finally {
      state.inflight[key] = false;
    }
  }

  function setStatus(text, isError) {
    const s = $('#status');
    s.textContent = text;
    s.classList.toggle('error', !!isError);
  }

  // ---- formatting ---------------------------------------------------

  function fmtPct(v) { return (Math.round(v * 10) / 10).toFixed(1) + '%'; }
  function fmtRate(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
  function fmtMs(v) {
    if (v >= 1000) return (v / 1000).toFixed(2) + 's';
    if (v >= 10) return Math.round(v) + 'ms';
    return v.toFixed(1) + 'ms';
  }
  function fmtBytes(v) {
    const units = ['B/s', 'KB/s', 'MB/s', 'GB/s'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)) + units[i];
  }

  // edgeLabel is the text the edge-labels switch asks for.
  function edgeLabel(e) {
    switch ($('#edge-labels').value) {
      case 'requests':
        return e.requests > 0 ? fmtPct(e.requestPercent) : '';
      case 'responseTime': {
        const v = e[$('#percentile').value];
        return v == null ? '' : fmtMs(v);
      }
      case 'throughput':
        return e.throughput > 0 ? fmtBytes(e.throughput) : '';
    }
    return '';
  }

  // ---- URL state ----------------------------------------------------
  // #/VIEW?window=10s&labels=requests&pct=p95 restores a view exactly.

  function readHash() {
    const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
    state.view = views.includes(path) ? path : 'graph';
    const q = new URLSearchParams(query || '');
    state.trace = q.get('trace'); // #/traces?trace=ID opens its waterfall
    for (const [param, id] of [['window', '#window'], ['labels', '#edge-labels'], ['pct', '#percentile']]) {
      const v = q.get(param);
      if (v && [...$(id).options].some((o) => o.value === v)) $(id).value = v;
    }
  }

  function writeHash() {
    const q = new URLSearchParams({ window: $('#window').value, labels: $('#edge-labels').value, pct: $('#percentile').value });
    history.replaceState(null, '', '#/' + state.view + '?' + q.toString());
  }

  function show(view) {
    state.view = view;
    for (const v of views) $('#view-' + v).hidden = v !== view;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === view);
    writeHash();
    refresh(true);
  }

  // ---- graph layout -------------------------------------------------

  // layout places nodes in columns by call depth (longest path from a
  // caller with no callers), left to right, and orders each column by the
  // mean position of its callers to keep edges short and uncrossed.
  function layout(nodes, edges) {
    const ids = nodes.map((n) => n.id);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const links = edges.map((e) => [e.source, e.target]);
    const linked = new Set(edges.map((e) => e.source + '->' + e.target));
    // Idle workloads hang off their service so they sit where traffic
    // would put them; these links are for layout only.
    for (const n of nodes) {
      for (const w of n.workloads || []) {
        if (byId.has(w) && !linked.has(n.id + '->' + w)) links.push([n.id, w]);
      }
    }
    const depth = new Map(ids.map((id) => [id, 0]));
    const limit = ids.length;
    for (let iter = 0; iter < limit; iter++) {
      let changed = false;
      for (const [u, v] of links) {
        if (u === v) continue;
        const d = depth.get(u) + 1;
        if (d > depth.get(v) && d < limit) { depth.set(v, d); changed = true; }
      }
      if (!changed) break;
    }
    const preds = new Map(ids.map((id) => [id, []]));
    for (const [u, v] of links) if (u !== v) preds.get(v).push(u);
    const cols = [];
    for (const id of ids) {
      const d = depth.get(id);
      (cols[d] = cols[d] || []).push(id);
    }
    const order = new Map();
    const pos = new Map();
    const rows = Math.max(1, ...cols.map((c) => (c ? c.length : 0)));
    cols.forEach((col, d) => {
      if (!col) return;
      const key = (id) => {
        const p = preds.get(id).filter((u) => order.has(u));
        return p.length ? p.reduce((s, u) => s + order.get(u), 0) / p.length : -1;
      };
      col.sort((a, b) => key(a) - key(b) || (a < b ? -1 : a > b ? 1 : 0));
      const offset = (rows - col.length) * 50;
      col.forEach((id, i) => {
        order.set(id, i + (rows - col.length) / 2);
        pos.set(id, { x: 90 + d * 190, y: 60 + offset + i * 100 });
      });
    });
    return { pos, width: 180 + cols.length * 190, height: 120 + rows * 100 };
  }

  // ---- graph drawing ------------------------------------------------

  function el(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function nodeShape(n, g) {
    if (n.kind === 'service') return el('path', { d: 'M0 -21 L21 15 L-21 15 Z', class: 'shape service' }, g);
    if (n.kind === 'gateway') return el('path', { d: 'M0 -23 L23 0 L0 23 L-23 0 Z', class: 'shape gateway' }, g);
    if (n.kind === 'unknown') return el('circle', { r: 18, class: 'shape unknown' }, g);
    if (n.vm) return el('rect', { x: -18, y: -18, width: 36, height: 36, rx: 8, class: 'shape vm' }, g);
    return el('circle', { r: 18, class: 'shape workload' }, g);
  }

  function drawNode(n) {
    let g = state.nodeEls.get(n.id);
    const sig = n.kind + (n.vm ? ':vm' : '');
    if (!g || g.dataset.sig !== sig) {
      if (g) g.remove();
      g = el('g', { 'data-node': n.id, 'data-sig': sig }, $('#nodes'));
      nodeShape(n, g);
      if (n.vm) {
        const b = el('g', { class: 'vm-badge', transform: 'translate(20,-20)' }, g);
        el('rect', { x: -11, y: -7, width: 22, height: 13, rx: 3 }, b);
        el('text', { y: 3 }, b).textContent = 'VM';
      }
      el('text', { class: 'node-label', y: 36 }, g);
      el('text', { class: 'node-sub', y: 49 }, g);
      g.addEventListener('click', (ev) => { ev.stopPropagation(); select(n.id); });
      state.nodeEls.set(n.id, g);
    }
    g.setAttribute('class', ['node', n.kind, n.health, n.vm ? 'vm' : '', state.selected === n.id ? 'selected' : ''].join(' ').trim());
    g.dataset.health = n.health;
    g.dataset.vm = n.vm ? 'true' : 'false';
    g.querySelector('.node-label').textContent = n.kind === 'service' ? n.name : n.name || n.id;
    g.querySelector('.node-sub').textContent =
      n.kind === 'service' ? (n.namespace || '') : n.kind === 'unknown' ? '' : [n.version, n.namespace].filter(Boolean).join(' · ');
    return g;
  }

  function drawEdge(e, a, b, curved) {
    let g = state.edgeEls.get(e.id);
    if (!g) {
      g = el('g', { 'data-edge': e.id }, $('#edges'));
      el('path', { class: 'line' }, g);
      el('path', { class: 'hit', fill: 'none', stroke: 'transparent', 'stroke-width': 10 }, g);
      const lock = el('g', { class: 'edge-lock' }, g);
      el('path', { class: 'shackle', d: 'M-3 -1 V-4 A3 3 0 0 1 3 -4 V-1' }, lock);
      el('rect', { x: -4.5, y: -1, width: 9, height: 7, rx: 1 }, lock);
      el('text', { class: 'edge-label' }, g);
      g.addEventListener('click', (ev) => { ev.stopPropagation(); select(e.id); });
      state.edgeEls.set(e.id, g);
    }
    // Shorten the line to the node outlines, and bow it when the reverse
    // edge exists so the two stay apart.
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const ux = dx / len, uy = dy / len, r = 25;
    const x1 = a.x + ux * r, y1 = a.y + uy * r, x2 = b.x - ux * (r + 2), y2 = b.y - uy * (r + 2);
    const bend = curved ? 28 : 0;
    const mx = (x1 + x2) / 2 - uy * bend, my = (y1 + y2) / 2 + ux * bend;
    const d = curved ? `M${x1} ${y1} Q${mx} ${my} ${x2} ${y2}` : `M${x1} ${y1} L${x2} ${y2}`;
    const health = e.health || 'idle';
    g.setAttribute('class', ['edge', health, e.protocol === 'tcp' ? 'tcp' : '', state.selected === e.id ? 'selected' : ''].join(' ').trim());
    g.dataset.health = health;
    g.dataset.mtls = e.mtls ? 'true' : 'false';
    g.dataset.rps = String(e.rps);
    g.dataset.requestPercent = String(e.requestPercent);
    g.dataset.errorPercent = String(e.errorPercent);
    g.dataset.protocol = e.protocol || '';
    const line = g.querySelector('path.line');
    line.setAttribute('d', d);
    line.setAttribute('marker-end', `url(#arrow-${health})`);
    g.querySelector('path.hit').setAttribute('d', d);
    const lx = curved ? (x1 + 2 * mx + x2) / 4 : mx, ly = curved ? (y1 + 2 * my + y2) / 4 : my;
    const lock = g.querySelector('.edge-lock');
    lock.setAttribute('transform', `translate(${lx},${ly + 9})`);
    lock.style.display = e.mtls ? '' : 'none';
    const label = g.querySelector('.edge-label');
    label.setAttribute('x', lx);
    label.setAttribute('y', ly - 5);
    label.textContent = edgeLabel(e);
  }

  function renderGraph() {
    const g = state.graph;
    if (!g) return;
    const showIdle = $('#show-idle').checked;
    const nodes = g.nodes.filter((n) => showIdle || !n.idle);
    const keep = new Set(nodes.map((n) => n.id));
    const edges = g.edges.filter((e) => keep.has(e.source) && keep.has(e.target));
    $('#graph-empty').hidden = edges.length > 0;
    const { pos, width, height } = layout(nodes, edges);
    const svg = $('#graph');
    svg.setAttribute('viewBox', `0 0 ${Math.max(width, 600)} ${Math.max(height, 400)}`);
    svg.setAttribute('height', Math.max(height, 480));

    const edgeIds = new Set(edges.map((e) => e.id));
    for (const e of edges) drawEdge(e, pos.get(e.source), pos.get(e.target), edgeIds.has(e.target + '->' + e.source));
    for (const [id, elem] of state.edgeEls) if (!edgeIds.has(id)) { elem.remove(); state.edgeEls.delete(id); }
    for (const n of nodes) {
      const p = pos.get(n.id);
      drawNode(n).setAttribute('transform', `translate(${p.x},${p.y})`);
    }
    for (const [id, elem] of state.nodeEls) if (!keep.has(id)) { elem.remove(); state.nodeEls.delete(id); }
    renderDetails();
  }

  function select(id) {
    state.selected = state.selected === id ? null : id;
    renderGraph();
  }

  function renderDetails() {
    const box = $('#details');
    const g = state.graph;
    const id = state.selected;
    const n = g && g.nodes.find((x) => x.id === id);
    const e = g && g.edges.find((x) => x.id === id);
    if (!n && !e) { box.hidden = true; return; }
    box.replaceChildren();
    const h = document.createElement('h3');
    h.textContent = id;
    box.appendChild(h);
    const rows = n ? [
      ['kind', n.kind + (n.vm ? ' (VM)' : '')], ['health', n.health], ['requests/s', fmtRate(n.rps)], ['error %', fmtPct(n.errorPercent)],
      ['app', n.app], ['version', n.version], ['host', n.host], ['mTLS', mtlsText(n)],
      ['services', (n.services || []).join(', ')], ['workloads', (n.workloads || []).join(', ')],
    ] : [
      ['protocol', e.protocol], ['health', e.health], ['requests/s', fmtRate(e.rps)], ['requests %', fmtPct(e.requestPercent)],
      ['error %', fmtPct(e.errorPercent)], ['p50', e.p50 == null ? '' : fmtMs(e.p50)], ['p95', e.p95 == null ? '' : fmtMs(e.p95)],
      ['p99', e.p99 == null ? '' : fmtMs(e.p99)], ['throughput', fmtBytes(e.throughput)], ['mTLS', mtlsText(e)],
    ];
    const dl = document.createElement('dl');
    for (const [k, v] of rows) {
      if (v === undefined || v === '') continue;
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = v;
      dl.append(dt, dd);
    }
    box.appendChild(dl);
    box.hidden = false;
  }

  async function refreshGraph() {
    await once('graph', async () => {
      state.graph = await api('/api/v1/graph?window=' + encodeURIComponent($('#window').value));
      renderGraph();
    });
  }

  // ---- tables -------------------------------------------------------

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text == null ? '' : text;
    tr.appendChild(td);
    return td;
  }

  function healthCell(tr, health) {
    const span = document.createElement('span');
    const dot = document.createElement('span');
    dot.className = 'dot ' + health;
    span.append(dot, document.createTextNode(health));
    cell(tr, span);
  }

  function nameWithBadges(name, n) {
    const span = document.createElement('span');
    span.textContent = name;
    if (n.vm) { const b = document.createElement('span'); b.className = 'badge'; b.textContent = 'VM'; span.appendChild(b); }
    if (n.kind === 'gateway') { const b = document.createElement('span'); b.className = 'badge gw'; b.textContent = 'gateway'; span.appendChild(b); }
    return span;
  }

  // mtlsText describes how much of a node's or edge's traffic used mutual
  // TLS, as the destination proxies reported it.
  function mtlsText(x) {
    if (!x.mtls) return x.requests ? 'no' : '';
    return x.mtlsPercent >= 100 ? 'yes' : fmtPct(x.mtlsPercent);
  }

  // mtlsCell adds the mTLS column: a badge when some traffic used mutual
  // TLS (its share as the tooltip), and data-mtls on the row for tests.
  function mtlsCell(tr, x) {
    tr.dataset.mtls = x.mtls ? 'true' : 'false';
    const span = document.createElement('span');
    if (x.mtls) {
      span.className = 'badge mtls';
      span.textContent = 'mTLS';
      span.title = fmtPct(x.mtlsPercent) + ' of requests over mutual TLS';
    } else {
      span.textContent = x.requests ? 'none' : '';
    }
    cell(tr, span);
  }

  function shortId(id) { return id.replace(/^workload:[^/]*\//, '').replace(/^service:/, ''); }

  async function refreshServices() {
    await once('services', async () => {
      const body = await api('/api/v1/services?window=' + encodeURIComponent($('#window').value));
      const tbody = $('#services-table tbody');
      tbody.replaceChildren();
      for (const s of body.services) {
        const tr = document.createElement('tr');
        tr.dataset.service = s.id;
        healthCell(tr, s.health);
        cell(tr, s.host || s.name);
        cell(tr, s.namespace);
        cell(tr, (s.workloads || []).map(shortId).join(', '));
        mtlsCell(tr, s);
        cell(tr, fmtRate(s.rps), 'num');
        cell(tr, fmtPct(s.errorPercent), 'num');
        tbody.appendChild(tr);
      }
    });
  }

  async function refreshWorkloads() {
    await once('workloads', async () => {
      const body = await api('/api/v1/workloads?window=' + encodeURIComponent($('#window').value));
      const tbody = $('#workloads-table tbody');
      tbody.replaceChildren();
      for (const w of body.workloads) {
        const tr = document.createElement('tr');
        tr.dataset.workload = w.id;
        healthCell(tr, w.health);
        cell(tr, nameWithBadges(w.name, w));
        cell(tr, w.namespace);
        cell(tr, w.app);
        cell(tr, w.version);
        cell(tr, (w.services || []).map(shortId).join(', '));
        mtlsCell(tr, w);
        cell(tr, fmtRate(w.rps), 'num');
        cell(tr, fmtPct(w.errorPercent), 'num');
        tbody.appendChild(tr);
      }
    });
  }

  async function refreshConfig() {
    await once('config', async () => {
      const [objs, analysis] = await Promise.all([api('/api/v1/objects'), api('/api/v1/analyze')]);
      $('#revision').textContent = 'revision ' + objs.metadata.resourceVersion;
      const at = $('#analysis-table tbody');
      at.replaceChildren();
      if (!analysis.messages || analysis.messages.length === 0) {
        const tr = document.createElement('tr');
        cell(tr, 'No problems found.').colSpan = 5;
        at.appendChild(tr);
      }
      for (const m of analysis.messages || []) {
        const tr = document.createElement('tr');
        cell(tr, m.Level, 'level-' + m.Level);
        cell(tr, m.Code);
        cell(tr, `${m.Object.Kind} ${m.Object.Namespace}/${m.Object.Name}`);
        cell(tr, m.Field);
        cell(tr, m.Text);
        at.appendChild(tr);
      }
      const ot = $('#objects-table tbody');
      ot.replaceChildren();
      for (const o of objs.items) {
        const tr = document.createElement('tr');
        cell(tr, o.kind);
        cell(tr, o.metadata.namespace);
        cell(tr, o.metadata.name);
        tr.addEventListener('click', () => {
          for (const r of ot.querySelectorAll('tr.selected')) r.classList.remove('selected');
          tr.classList.add('selected');
          const pre = $('#object-view');
          pre.textContent = JSON.stringify(o, null, 2);
          pre.hidden = false;
        });
        ot.appendChild(tr);
      }
    });
  }

  // ---- traces -------------------------------------------------------

  async function refreshTraces() {
    await once('traces', async () => {
      const svc = $('#trace-service').value;
      const body = await api('/api/v1/traces?limit=100' + (svc ? '&service=' + encodeURIComponent(svc) : ''));
      const known = new Set([...$('#trace-service').options].map((o) => o.value));
      const tbody = $('#traces-table tbody');
      tbody.replaceChildren();
      for (const t of body.traces) {
        for (const s of t.services) {
          if (!known.has(s)) {
            known.add(s);
            const o = document.createElement('option');
            o.value = o.textContent = s;
            $('#trace-service').appendChild(o);
          }
        }
        const tr = document.createElement('tr');
        tr.dataset.trace = t.traceId;
        cell(tr, new Date(t.start).toLocaleTimeString());
        const root = cell(tr, `${t.rootService}: ${t.rootName}`);
        if (t.error) root.className = 'level-Error';
        cell(tr, t.services.join(', '));
        cell(tr, t.spans, 'num');
        cell(tr, fmtMs(t.durationMs), 'num');
        tr.addEventListener('click', () => showTrace(t.traceId));
        tbody.appendChild(tr);
      }
      if (state.trace) {
        const id = state.trace;
        state.trace = null;
        await showTrace(id);
      }
    });
  }

  async function showTrace(id) {
    try {
      const t = await api('/api/v1/traces/' + encodeURIComponent(id));
      renderWaterfall(t);
    } catch (err) {
      setStatus(String(err.message || err), true);
    }
  }

  // tsMs parses an RFC 3339 time to fractional milliseconds; Date keeps
  // only whole ones, too coarse for sub-millisecond spans.
  function tsMs(s) {
    const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$/.exec(s);
    if (!m) return Date.parse(s);
    return Date.parse(m[1] + m[3]) + (m[2] ? parseFloat(m[2]) * 1000 : 0);
  }

  // renderWaterfall draws spans as bars on a shared time axis, children
  // under their parent.
  function renderWaterfall(t) {
    const box = $('#waterfall');
    box.replaceChildren();
    const h = document.createElement('h3');
    h.textContent = `trace ${t.traceId} · ${fmtMs(t.durationMs)} · ${t.spans.length} spans`;
    box.appendChild(h);
    const t0 = tsMs(t.start);
    const total = Math.max(t.durationMs, 0.001);
    const ids = new Set(t.spans.map((s) => s.spanId));
    const children = new Map();
    const roots = [];
    for (const s of t.spans) {
      if (s.parentSpanId && ids.has(s.parentSpanId)) {
        if (!children.has(s.parentSpanId)) children.set(s.parentSpanId, []);
        children.get(s.parentSpanId).push(s);
      } else roots.push(s);
    }
    const rows = [];
    const walk = (s, depth) => {
      rows.push([s, depth]);
      for (const c of children.get(s.spanId) || []) walk(c, depth + 1);
    };
    roots.forEach((s) => walk(s, 0));
    for (const [s, depth] of rows) {
      const start = tsMs(s.start) - t0;
      const dur = Math.max(0, tsMs(s.end) - tsMs(s.start));
      const row = document.createElement('div');
      row.className = 'wf-row';
      row.dataset.span = s.spanId;
      const name = document.createElement('div');
      name.className = 'wf-name';
      name.style.paddingLeft = depth * 14 + 'px';
      name.textContent = `${s.service}: ${s.name}`;
      name.title = Object.entries(s.attributes || {}).map(([k, v]) => `${k}=${v}`).join('\n');
      const track = document.createElement('div');
      track.className = 'wf-track';
      const bar = document.createElement('div');
      bar.className = 'wf-bar' + (s.error ? ' error' : '') + (s.kind === 'CLIENT' ? ' client' : '');
      bar.style.left = (100 * start / total) + '%';
      bar.style.width = (100 * dur / total) + '%';
      const label = document.createElement('span');
      label.className = 'wf-dur';
      label.textContent = fmtMs(dur);
      label.style.left = Math.min(100 * (start + dur) / total + 1, 90) + '%';
      track.append(bar, label);
      row.append(name, track);
      box.appendChild(row);
    }
    box.hidden = false;
  }

  // ---- refresh loop -------------------------------------------------

  function refresh(now) {
    const t = state.tick++;
    switch (state.view) {
      case 'graph': return refreshGraph();
      case 'services': if (now || t % 2 === 0) return refreshServices(); break;
      case 'workloads': if (now || t % 2 === 0) return refreshWorkloads(); break;
      case 'config': if (now || t % 5 === 0) return refreshConfig(); break;
      case 'traces': if (now || t % 5 === 0) return refreshTraces(); break;
      case 'canaries': if (now || t % 2 === 0) return once('canaries', () => window.weftCanaries.refresh(api)); break; // canaries.js
    }
  }

  function init() {
    readHash();
    window.addEventListener('hashchange', () => { readHash(); show(state.view); });
    for (const id of ['#edge-labels', '#percentile']) {
      $(id).addEventListener('change', () => {
        writeHash();
        renderGraph(); // labels change now, not at the next refresh
      });
    }
    $('#window').addEventListener('change', () => { writeHash(); refresh(true); });
    $('#show-idle').addEventListener('change', renderGraph);
    $('#trace-service').addEventListener('change', () => refresh(true));
    $('#trace-refresh').addEventListener('click', () => refresh(true));
    $('#graph').addEventListener('click', () => { if (state.selected) select(state.selected); });
    show(state.view);
    setInterval(() => refresh(false), 1000);
  }

  init();
})();
