// weft console: the Canaries view. Each Canary (flagger.app/v1beta1) with
// its status as the analysis writes it, and for the selected one its
// weight over time, the last checks and the events, from
// /api/v1/canaries/NS/NAME. app.js calls weftCanaries.refresh(api).
'use strict';

window.weftCanaries = (function () {
  const SVGNS = 'http://www.w3.org/2000/svg';
  const $ = (sel) => document.querySelector(sel);
  let selected = null; // "namespace/name"

  function td(tr, text, cls) {
    const c = document.createElement('td');
    if (cls) c.className = cls;
    c.textContent = text == null ? '' : text;
    tr.appendChild(c);
    return c;
  }

  function age(ts) {
    if (!ts) return '';
    const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
    if (s < 120) return s + 's';
    if (s < 7200) return Math.round(s / 60) + 'm';
    return Math.round(s / 3600) + 'h';
  }

  // chart draws the canary weight over time, one step per recorded change,
  // and marks where the phase changed.
  function chart(history) {
    const w = 640, h = 180, pad = 28;
    const svg = document.createElementNS(SVGNS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('class', 'canary-chart');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'canary weight over time');
    const mk = (tag, attrs) => {
      const e = document.createElementNS(SVGNS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      svg.appendChild(e);
      return e;
    };
    for (const y of [0, 50, 100]) {
      const py = h - pad - (h - 2 * pad) * y / 100;
      mk('line', { x1: pad, x2: w - 8, y1: py, y2: py, class: 'grid-line' });
      mk('text', { x: pad - 4, y: py + 4, class: 'axis' }).textContent = y + '%';
    }
    if (!history || history.length === 0) return svg;
    const t0 = Date.parse(history[0].time);
    const t1 = Math.max(Date.now(), t0 + 1000);
    const x = (t) => pad + (w - pad - 8) * (Date.parse(t) - t0) / (t1 - t0);
    const y = (v) => h - pad - (h - 2 * pad) * v / 100;
    let d = '', prevPhase = null;
    history.forEach((p, i) => {
      const px = x(p.time), py = y(p.weight);
      d += i === 0 ? `M${px} ${py}` : `H${px} V${py}`;
      if (p.phase !== prevPhase) {
        mk('line', { x1: px, x2: px, y1: pad - 6, y2: h - pad, class: 'phase-line' });
        mk('text', { x: px + 2, y: pad - 8, class: 'phase-label' }).textContent = p.phase;
        prevPhase = p.phase;
      }
    });
    d += `H${w - 8}`;
    mk('path', { d, class: 'weight-line', 'data-points': String(history.length) });
    return svg;
  }

  function renderDetails(obj, info) {
    const box = $('#canary-details');
    box.replaceChildren();
    const st = obj.status || {};
    const h = document.createElement('h3');
    h.textContent = `${obj.metadata.namespace}/${obj.metadata.name}: ${st.phase || 'no status yet'}`;
    box.appendChild(h);
    const t = info.target || {};
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = `primary ${t.primary || '?'}` + (t.canary && t.canary !== t.primary ? `, canary ${t.canary}` : '') +
      ` · services ${t.hosts ? t.hosts.primary + ' / ' + t.hosts.canary : ''}` + (t.problem ? ` · ${t.problem}` : '');
    box.appendChild(p);
    box.appendChild(chart(info.history));

    const checks = document.createElement('table');
    checks.className = 'grid';
    checks.id = 'canary-checks';
    checks.innerHTML = '<thead><tr><th>Age</th><th>Check</th><th>Value</th><th>Range</th><th>Result</th></tr></thead><tbody></tbody>';
    for (const c of (info.checks || []).slice(-15).reverse()) {
      const tr = document.createElement('tr');
      tr.dataset.check = c.name;
      tr.dataset.ok = c.ok ? 'true' : 'false';
      td(tr, age(c.time));
      td(tr, `${c.kind} ${c.name}`);
      td(tr, c.value == null ? '' : c.value.toFixed(2), 'num');
      td(tr, [c.min != null ? '≥ ' + c.min : '', c.max != null ? '≤ ' + c.max : ''].filter(Boolean).join(', '));
      td(tr, c.ok ? 'ok' : 'failed' + (c.message ? ': ' + c.message : ''), c.ok ? '' : 'level-Error');
      checks.tBodies[0].appendChild(tr);
    }
    const h4 = document.createElement('h2');
    h4.textContent = 'Checks';
    box.append(h4, checks);

    const events = document.createElement('table');
    events.className = 'grid';
    events.id = 'canary-events';
    events.innerHTML = '<thead><tr><th>Type</th><th>Age</th><th>Message</th></tr></thead><tbody></tbody>';
    for (const e of (info.events || []).slice().reverse()) {
      const tr = document.createElement('tr');
      td(tr, e.type, e.type === 'Warning' ? 'level-Warning' : 'level-Info');
      td(tr, age(e.lastTime) + (e.count > 1 ? ` (×${e.count})` : ''));
      td(tr, e.message);
      events.tBodies[0].appendChild(tr);
    }
    const h5 = document.createElement('h2');
    h5.textContent = 'Events';
    box.append(h5, events);
    box.hidden = false;
  }

  async function refresh(api) {
    const list = await api('/api/v1/objects?kind=Canary');
    const tbody = $('#canaries-table tbody');
    tbody.replaceChildren();
    $('#canaries-empty').hidden = list.items.length > 0;
    let current = null;
    for (const o of list.items) {
      const key = o.metadata.namespace + '/' + o.metadata.name;
      const st = o.status || {};
      const tr = document.createElement('tr');
      tr.dataset.canary = key;
      tr.dataset.phase = st.phase || '';
      td(tr, o.metadata.name);
      td(tr, o.metadata.namespace);
      td(tr, st.phase || '', 'phase-' + (st.phase || 'none'));
      td(tr, (st.canaryWeight || 0) + '%', 'num');
      td(tr, st.failedChecks || 0, 'num');
      td(tr, st.lastAppliedSpec || '');
      td(tr, age(st.lastTransitionTime));
      if (key === selected) { tr.classList.add('selected'); current = o; }
      tr.addEventListener('click', () => { selected = key; refresh(api); });
      tbody.appendChild(tr);
    }
    if (!current && list.items.length > 0) {
      current = list.items[0];
      selected = current.metadata.namespace + '/' + current.metadata.name;
      tbody.rows[0].classList.add('selected');
    }
    if (!current) { $('#canary-details').hidden = true; return; }
    const body = await api('/api/v1/canaries/' + encodeURIComponent(current.metadata.namespace) + '/' + encodeURIComponent(current.metadata.name));
    renderDetails(current, body.info || {});
  }

  return { refresh };
})();
