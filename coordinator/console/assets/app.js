// The dagvault web console (docs/console.md). It reads and acts only
// through the coordinator's admin API (POST /api/v1/<Method>, the
// messages of admin.proto in protobuf's JSON mapping): no second model
// of the data. Every text from the API is put into the page as text,
// never as markup.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const REFRESH_MS = 3000;
const NODE_COLOURS = ['#2f5fb3', '#2e7d32', '#b26a00', '#8e24aa', '#00838f', '#6d4c41', '#c2185b', '#455a64'];

// ---- signing in -----------------------------------------------------------

// A token from `dagvault console login` arrives in the address's fragment
// (never sent to a server or kept in its logs); it is kept for this tab
// only and taken out of the address bar.
function takeTokenFromAddress() {
  let q;
  try { q = parseHash().params; } catch (e) { return; }  // a malformed address: ignore it
  if (q.token) {
    sessionStorage.setItem('dagvault.token', q.token);
    delete q.token;
    const rest = Object.keys(q).map(k => `${k}=${encodeURIComponent(q[k])}`).join('&');
    history.replaceState(null, '', `#/${parseHash().page}${rest ? '?' + rest : ''}`);
  }
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One admin API call. `confirmed`: the person has confirmed an action.
async function api(method, request, confirmed) {
  const headers = { 'Content-Type': 'application/json' };
  const token = sessionStorage.getItem('dagvault.token');
  if (token) headers.Authorization = `Bearer ${token}`;
  if (confirmed) headers['X-Dagvault-Confirm'] = 'yes';
  const response = await fetch(`/api/v1/${method}`, {
    method: 'POST', headers, body: JSON.stringify(request || {}), credentials: 'same-origin',
  });
  let body = {};
  try { body = await response.json(); } catch (e) { /* an empty or non-JSON answer */ }
  if (response.status === 401 && token) {
    // An expired or foreign token: forget it, so that a certificate (if the
    // browser has one) or a new login takes over.
    sessionStorage.removeItem('dagvault.token');
  }
  if (!response.ok) {
    throw new ApiError(response.status, body.code || String(response.status),
                       body.message || response.statusText);
  }
  return body;
}

// ---- small helpers ----------------------------------------------------------

// h('td', {class: 'why'}, 'text', child, ...): an element with text children.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const num = v => Number(v || 0);  // int64 fields arrive as strings

function time(us) {
  if (!num(us)) return '-';
  return new Date(num(us) / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function age(seconds) {
  let n = num(seconds);
  if (n <= 0) return '-';
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (n >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(n / size)}${unit}`);
      n %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

function bytes(n) {
  n = num(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function gen(g) { return '0x' + num(g).toString(16).toUpperCase().padStart(8, '0'); }

// Enum names into words: JOB_SUCCEEDED → succeeded, RPO_NEVER_BACKED_UP → never backed up.
function words(name, prefix) {
  if (!name) return '-';
  return String(name).replace(prefix, '').toLowerCase().replace(/_/g, ' ');
}

const RPO_CLASS = {
  RPO_OK: 'rpo-ok', RPO_WARNING: 'rpo-warning', RPO_CRITICAL: 'rpo-critical',
  RPO_NEVER_BACKED_UP: 'rpo-never', RPO_NOT_SET: 'rpo-notset', RPO_STATE_UNSPECIFIED: 'rpo-unknown',
};

function rpoBadge(state) {
  const label = state === 'RPO_STATE_UNSPECIFIED' ? 'unknown' : words(state, /^RPO_/);
  return h('span', { class: `badge ${RPO_CLASS[state] || 'rpo-unknown'}`, 'data-rpo': label }, label);
}

function jobBadge(state) {
  const cls = state === 'JOB_SUCCEEDED' ? 'state-ok'
    : state === 'JOB_FAILED' ? 'state-bad'
    : state === 'JOB_CANCELLED' ? 'state-idle' : 'state-warn';
  return h('span', { class: `badge ${cls}` }, words(state, /^JOB_/));
}

function copyClass(state) {
  if (state === 'MOUNTED' || state === 'HEALTHY') return 'ok';
  if (state === 'INITIALIZING' || state === 'RESYNCHRONIZING' || state === 'SUSPENDED') return 'warn';
  return 'bad';
}
const COPY_FILL = { ok: '#e3f1e4', warn: '#fff1d6', bad: '#fde2e1' };
const COPY_STROKE = { ok: '#2e7d32', warn: '#b26a00', bad: '#c62828' };

function table(headers, rows, attrs) {
  return h('table', attrs || {},
    h('thead', {}, h('tr', {}, headers.map(x => h('th', {}, x)))),
    h('tbody', {}, rows));
}

function nodeColour(nodes, node) {
  const i = nodes.indexOf(node);
  return NODE_COLOURS[(i < 0 ? 0 : i) % NODE_COLOURS.length];
}

function legend(nodes) {
  return h('div', { class: 'legend' }, nodes.map(n => h('span', {},
    (() => { const v = s('svg', { width: 10, height: 10 }); v.appendChild(s('rect', { width: 10, height: 10, fill: nodeColour(nodes, n) })); return v; })(),
    ' ', n)));
}

// ---- confirming an action -------------------------------------------------

// Shows the dialog; resolves with the form's values on Confirm, null on Cancel.
function confirmAction(title, body) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  const holder = document.getElementById('confirm-body');
  holder.replaceChildren(body);
  return new Promise(resolve => {
    dialog.onclose = () => {
      if (dialog.returnValue !== 'ok') return resolve(null);
      const values = {};
      for (const el of holder.querySelectorAll('[name]')) values[el.name] = el.type === 'checkbox' ? el.checked : el.value;
      resolve(values);
    };
    dialog.returnValue = '';
    dialog.showModal();
  });
}

async function act(title, body, method, request, after) {
  const values = await confirmAction(title, body);
  if (values === null) return;
  try {
    const result = await api(method, typeof request === 'function' ? request(values) : request, true);
    if (after) after(result);
    else route();
  } catch (e) {
    showError(e);
  }
}

// ---- pages ------------------------------------------------------------------

async function overviewPage() {
  const status = await api('GetStatus', { all_units: true });
  const units = status.units || [];
  const ok = num(status.units_within_rpo);
  const rows = units.map(u => h('tr', { 'data-unit': u.unit },
    h('td', {}, h('a', { href: `#/chains?unit=${encodeURIComponent(u.unit)}` }, u.unit)),
    h('td', {}, rpoBadge(u.state)),
    h('td', {}, time(u.newest_restore_point_us), h('br'),
      h('span', { class: 'muted' }, num(u.newest_restore_point_us) ? `${age(u.newest_restore_point_age_seconds)} old, from ${u.newest_restore_point_node}` : 'none')),
    h('td', {}, num(u.rpo_seconds) ? age(u.rpo_seconds) : '-'),
    h('td', {}, num(u.newest_full_us) ? `${age(u.newest_full_age_seconds)} old` : '-'),
    h('td', {}, u.last_job ? h('a', { href: `#/job?id=${encodeURIComponent(u.last_job)}` }, u.last_job) : '-',
      u.last_job ? [' ', jobBadge(u.last_job_state)] : []),
    h('td', {}, u.next_source || h('span', { class: 'badge state-bad' }, 'none'), h('br'),
      h('span', { class: 'muted' }, u.next_source_why)),
    h('td', { class: 'why' }, u.reason || ''),
    h('td', {}, h('button', {
      onclick: () => backupNow(u.unit),
    }, 'Back up…'))));
  return [
    h('h1', {}, 'Overview'),
    h('p', { class: 'summary', id: 'rpo-summary' },
      `${ok} of ${num(status.units_total)} units within their RPO; ${status.running ? status.running.length : 0} jobs running; `,
      `${status.copies_fine} of ${status.copies_total} copies Healthy or Mounted.`),
    table(['Unit', 'State', 'Newest restore point', 'RPO', 'Newest Full', 'Last job', 'Next backup from', 'Why', ''],
      rows, { id: 'units' }),
  ];
}

function backupNow(unit) {
  const body = h('div', {},
    h('p', {}, `Start a backup of ${unit} now, from the copy the policy's source mode picks.`),
    h('label', {}, 'Type ', h('select', { name: 'type' },
      ['INCREMENTAL', 'FULL', 'DIFFERENTIAL', 'COPY'].map(t => h('option', { value: t }, words(t, ''))))));
  act(`Back up ${unit}`, body, 'StartBackup', v => ({ unit, type: v.type }),
      job => { location.hash = `#/job?id=${encodeURIComponent(job.id)}`; });
}

async function topologyPage() {
  const status = await api('GetStatus', { all_copies: true });
  const nodes = (status.nodes || []).map(n => n.node).sort();
  const copies = (status.copies || []).map(c => Object.assign({ reporting: c.node_reporting }, c.status));
  const units = [...new Set(copies.map(c => c.unit))].sort();
  const cellW = 190, cellH = 74, left = 110, top = 44;
  const svg = s('svg', { width: left + nodes.length * cellW + 10, height: top + units.length * cellH + 10, id: 'dag' });
  nodes.forEach((n, i) => {
    const info = status.nodes.find(x => x.node === n);
    svg.appendChild(s('text', { x: left + i * cellW + 8, y: 18, 'font-weight': 700 }, n));
    svg.appendChild(s('text', { x: left + i * cellW + 8, y: 32, class: 'small' }, info.reporting ? 'reporting' : `not reporting: ${info.down_reason || ''}`));
  });
  const at = (unit, node) => ({ x: left + nodes.indexOf(node) * cellW + 8, y: top + units.indexOf(unit) * cellH + 4 });
  // Replication: from the active copy to each passive one.
  for (const unit of units) {
    const active = copies.find(c => c.unit === unit && c.role === 'ACTIVE');
    svg.appendChild(s('text', { x: 8, y: top + units.indexOf(unit) * cellH + 36, 'font-weight': 700 }, unit));
    if (!active) continue;
    for (const c of copies.filter(x => x.unit === unit && x.role === 'PASSIVE')) {
      const a = at(unit, active.node), b = at(unit, c.node);
      svg.appendChild(s('line', { x1: a.x + 170, y1: a.y + 33, x2: b.x, y2: b.y + 33, stroke: '#9aa5b8', 'stroke-dasharray': '4 3' }));
    }
  }
  for (const c of copies) {
    const p = at(c.unit, c.node);
    const cls = c.reporting ? copyClass(c.state) : 'bad';
    const lagged = c.role === 'PASSIVE' && num(c.replay_lag_seconds) > 0;
    const role = c.role === 'ACTIVE' ? 'active' : lagged ? `lagged ${age(c.replay_lag_seconds)}` : 'passive';
    const g = s('g', { 'data-copy': `${c.unit}@${c.node}` });
    g.appendChild(s('rect', { x: p.x, y: p.y, width: 170, height: 62, rx: 6, fill: COPY_FILL[cls], stroke: COPY_STROKE[cls], 'stroke-width': c.role === 'ACTIVE' ? 2.5 : 1 }));
    g.appendChild(s('text', { x: p.x + 8, y: p.y + 16, 'font-weight': 700 }, `${role}`));
    g.appendChild(s('text', { x: p.x + 8, y: p.y + 32 }, c.reporting ? words(c.state, '') : 'service down'));
    g.appendChild(s('text', { x: p.x + 8, y: p.y + 48, class: 'small' },
      c.role === 'ACTIVE' ? `log ${gen(c.last_log_generation)}` : `copy queue ${num(c.copy_queue)}, replay queue ${num(c.replay_queue)}`));
    svg.appendChild(g);
  }
  const rows = copies.map(c => h('tr', { 'data-copy': `${c.unit}@${c.node}` },
    h('td', {}, c.unit), h('td', {}, c.node), h('td', {}, words(c.role, '')),
    h('td', {}, h('span', { class: `badge state-${copyClass(c.state)}` }, c.reporting ? words(c.state, '') : 'service down')),
    h('td', {}, num(c.copy_queue)), h('td', {}, num(c.replay_queue)), h('td', {}, age(c.replay_lag_seconds)),
    h('td', { class: 'why' }, c.message || '')));
  return [
    h('h1', {}, 'Topology'),
    h('p', { class: 'muted' }, `${nodes.length} nodes, ${units.length} units, ${copies.length} copies; refreshed every ${REFRESH_MS / 1000} s.`),
    svg,
    table(['Unit', 'Node', 'Role', 'State', 'Copy queue', 'Replay queue', 'Replay lag', 'Message'], rows, { id: 'copies' }),
  ];
}

async function unitPicker(page, current) {
  const status = await api('GetStatus', { all_units: true });
  const units = (status.units || []).map(u => u.unit).sort();
  const unit = current || units[0] || '';
  const select = h('select', { id: 'unit', onchange: e => { location.hash = `#/${page}?unit=${encodeURIComponent(e.target.value)}`; } },
    units.map(u => h('option', { value: u, selected: u === unit }, u)));
  return { unit, select };
}

async function chainsPage(params) {
  const { unit, select } = await unitPicker('chains', params.unit);
  const out = [h('h1', {}, 'Chains'), h('div', { class: 'toolbar' }, 'Unit ', select)];
  if (!unit) return out.concat(h('p', {}, 'No units yet.'));
  const shown = await api('ShowChains', { unit });
  const chains = shown.chains || [];
  const pieces = chains.flatMap(c => [c.full, ...(c.incrementals || []), ...(c.differentials || [])]).filter(Boolean);
  const nodes = [...new Set(pieces.map(p => p.source_node))].sort();
  out.push(h('p', {}, `${chains.length} chain(s). Next Incremental: `, h('span', { id: 'next-incremental' }, shown.next_incremental || '-')));
  out.push(legend(nodes));
  chains.forEach((c, index) => {
    const all = [c.full, ...(c.incrementals || []), ...(c.differentials || [])].filter(Boolean)
      .sort((a, b) => num(a.started_us) - num(b.started_us));
    const t0 = Math.min(...all.map(p => num(p.started_us)));
    const t1 = Math.max(...all.map(p => num(p.finished_us)), ...(c.restore_points || []).map(r => num(r.time_us)), t0 + 1);
    const width = 900, left = 10, span = width - 2 * left;
    const x = t => left + (span * (num(t) - t0)) / (t1 - t0);
    const svg = s('svg', { width, height: 96, 'data-chain': index });
    all.forEach(p => {
      const x0 = x(p.started_us), w = Math.max(6, x(p.finished_us) - x0);
      const type = words(p.type, '');
      const g = s('g', { 'data-piece': p.manifest, 'data-type': type, 'data-node': p.source_node });
      g.appendChild(s('rect', { x: x0, y: 18, width: w, height: 30, fill: nodeColour(nodes, p.source_node), rx: 3 }));
      g.appendChild(s('text', { x: x0 + 2, y: 62, class: 'small' }, `${type[0].toUpperCase()} ${p.source_node}`));
      g.appendChild(s('title', {}, `${type} ${p.manifest} from ${p.source_node}, generations ${gen(p.low_generation)}–${gen(p.high_generation)}`));
      svg.appendChild(g);
    });
    for (const r of c.restore_points || []) {
      // A verified restore point is green, one whose verification failed red.
      const v = r.verification;
      const verified = v ? (v.passed ? 'passed' : 'failed') : 'no';
      const colour = v ? (v.passed ? '#2e7d32' : '#c62828') : '#1d2330';
      svg.appendChild(s('line', { x1: x(r.time_us), y1: 50, x2: x(r.time_us), y2: 74, stroke: '#1d2330' }));
      const dot = s('circle', { cx: x(r.time_us), cy: 76, r: v ? 5 : 3, fill: colour, 'data-restore-point': gen(r.generation), 'data-verified': verified });
      dot.appendChild(s('title', {}, v ? `restore verification ${v.passed ? 'passed' : 'FAILED'} ${time(v.ended_us)} on ${v.node}` : `restore point ${gen(r.generation)}, not verified`));
      svg.appendChild(dot);
    }
    if (c.broken) {
      svg.appendChild(s('line', { x1: width - 14, y1: 8, x2: width - 14, y2: 90, stroke: '#c62828', 'stroke-width': 3 }));
      svg.appendChild(s('text', { x: 10, y: 12, fill: '#c62828', 'data-break': gen(c.broken_at_generation) }, `broken at ${gen(c.broken_at_generation)}: ${c.broken_reason}`));
    }
    out.push(h('h2', {}, `Chain ${index + 1}: Full ${c.full ? c.full.manifest : '?'}`, c.broken ? ' (broken)' : ''));
    out.push(svg);
    out.push(table(['Piece', 'Type', 'From', 'Generations', 'Frozen', 'Size', 'New'],
      all.map(p => h('tr', {}, h('td', {}, h('code', {}, p.manifest)), h('td', {}, words(p.type, '')),
        h('td', {}, p.source_node), h('td', {}, `${gen(p.low_generation)}–${gen(p.high_generation)}`),
        h('td', {}, time(p.started_us)), h('td', {}, bytes(p.logical_bytes)), h('td', {}, bytes(p.new_bytes))))));
    const verifications = c.verifications || [];
    if (verifications.length) {
      out.push(h('h3', {}, 'Restore verifications'));
      out.push(table(['Result', 'Restore point', 'Node', 'Ended', 'Took', 'What it found'],
        verifications.map(v => h('tr', { 'data-verification': v.passed ? 'passed' : v.inconclusive ? 'inconclusive' : 'failed' },
          h('td', { class: v.passed || v.inconclusive ? '' : 'error' }, v.passed ? 'passed' : v.inconclusive ? 'inconclusive' : 'FAILED'),
          h('td', {}, gen(v.generation)), h('td', {}, v.node), h('td', {}, time(v.ended_us)),
          h('td', {}, `${((num(v.ended_us) - num(v.started_us)) / 1e6).toFixed(1)} s`),
          h('td', {}, v.passed
            ? `${num(v.files)} files matched their backups' digests; ${(v.databases || []).map(d => `${d.database}: ${num(d.items)} items, ${num(d.sampled_items)} read by key`).join('; ')}`
            : (v.problems || []).join('; '))))));
    }
    const points = c.restore_points || [];
    if (points.length) {
      out.push(h('p', {}, h('button', {
        onclick: () => restoreTo(unit, points[points.length - 1]),
      }, 'Restore every copy to this chain\'s newest restore point…')));
    }
  });
  return out;
}

function restoreTo(unit, point) {
  const body = h('div', {},
    h('p', {}, `Restore every copy of ${unit} to generation ${gen(point.generation)} (frozen ${time(point.time_us)}).`),
    h('p', { class: 'error' }, 'Every copy of the unit is dismounted or suspended and overwritten with the restored data. Mail written since that point is lost unless it is rolled forward.'),
    h('label', {}, h('input', { type: 'checkbox', name: 'roll_forward' }), ' roll forward with the logs still on the active server'));
  act(`Restore ${unit}`, body, 'StartRestore',
      v => ({ unit, to_generation: num(point.generation), roll_forward: v.roll_forward }),
      job => { location.hash = `#/job?id=${encodeURIComponent(job.id)}`; });
}

function progressCell(j) {
  const total = num(j.bytes_total), done = num(j.bytes_done);
  // Steps 3 and 5 of an all-copies restore run at once.
  const steps = j.plan ? (j.plan.steps || []).filter(x => x.state === 'STEP_RUNNING') : [];
  return h('td', { class: 'progress', 'data-job': j.id },
    total ? h('progress', { max: total, value: done }) : '',
    total ? ` ${bytes(done)} of ${bytes(total)}` : '',
    num(j.bytes_per_second) ? `, ${bytes(j.bytes_per_second)}/s` : '',
    steps.map(step => h('div', { class: 'muted' }, `step ${step.number} of 7: ${step.name}`)));
}

async function jobsPage(params) {
  const [status, list] = await Promise.all([api('GetStatus', {}), api('ListJobs', { unit: params.unit || '', limit: 200 })]);
  const running = status.running || [];
  const stateFilter = params.state || '';
  const kindFilter = params.kind || '';
  const jobs = (list.jobs || []).filter(j => (!stateFilter || j.state === stateFilter) && (!kindFilter || j.kind === kindFilter));
  const setFilter = (key, value) => {
    const p = Object.assign({}, params, { [key]: value });
    location.hash = '#/jobs?' + Object.keys(p).filter(k => p[k]).map(k => `${k}=${encodeURIComponent(p[k])}`).join('&');
  };
  const node = j => (j.attempts && j.attempts.length ? j.attempts[j.attempts.length - 1].node : '-');
  return [
    h('h1', {}, 'Jobs'),
    h('h2', {}, `Running (${running.length})`),
    table(['Job', 'Unit', 'What', 'Node', 'State', 'Progress', ''], running.map(j => h('tr', { 'data-running': j.id },
      h('td', {}, h('a', { href: `#/job?id=${encodeURIComponent(j.id)}` }, j.id)), h('td', {}, j.unit),
      h('td', {}, j.kind === 'JOB_RESTORE' ? 'restore' : `${words(j.type, '')} backup`), h('td', {}, node(j)),
      h('td', {}, jobBadge(j.state)), progressCell(j),
      h('td', {}, h('button', { onclick: () => cancelJob(j) }, 'Cancel…'))))),
    h('h2', {}, 'History'),
    h('div', { class: 'toolbar' },
      'Unit ', h('input', { id: 'filter-unit', value: params.unit || '', placeholder: 'every unit', onchange: e => setFilter('unit', e.target.value) }),
      'State ', h('select', { id: 'filter-state', onchange: e => setFilter('state', e.target.value) },
        ['', 'JOB_SUCCEEDED', 'JOB_FAILED', 'JOB_CANCELLED'].map(v => h('option', { value: v, selected: v === stateFilter }, v ? words(v, /^JOB_/) : 'any'))),
      'Kind ', h('select', { id: 'filter-kind', onchange: e => setFilter('kind', e.target.value) },
        ['', 'JOB_BACKUP', 'JOB_RESTORE'].map(v => h('option', { value: v, selected: v === kindFilter }, v ? words(v, /^JOB_/) : 'any')))),
    table(['Job', 'Unit', 'What', 'Node', 'State', 'Created', 'Reason'], jobs.map(j => h('tr', { 'data-job-row': j.id },
      h('td', {}, h('a', { href: `#/job?id=${encodeURIComponent(j.id)}` }, j.id)), h('td', {}, j.unit),
      h('td', {}, j.kind === 'JOB_RESTORE' ? 'restore' : `${words(j.type, '')} backup`), h('td', {}, node(j)),
      h('td', {}, jobBadge(j.state)), h('td', {}, time(j.created_us)), h('td', { class: 'why' }, j.reason || ''))), { id: 'history' }),
  ];
}

function cancelJob(j) {
  act(`Cancel ${j.id}`, h('p', {}, `Cancel job ${j.id} (${j.unit})? Its node stops it and ends the writer session with failure.`),
      'CancelJob', { job: j.id });
}

async function jobPage(params) {
  const j = await api('GetJob', { job: params.id });
  const ended = ['JOB_SUCCEEDED', 'JOB_FAILED', 'JOB_CANCELLED'].includes(j.state);
  const out = [
    h('h1', {}, `Job ${j.id}`),
    h('p', {}, `${j.kind === 'JOB_RESTORE' ? (j.plan && j.plan.items ? 'Item-level restore' : 'Restore') : words(j.type, '') + ' backup'} of ${j.unit}: `, jobBadge(j.state),
      ended ? '' : [' ', h('button', { onclick: () => cancelJob(j) }, 'Cancel…')]),
    j.reason ? h('p', { class: 'why' }, j.reason) : '',
    h('table', {}, h('tbody', {}, h('tr', {}, h('th', {}, 'Progress'), progressCell(j)),
      h('tr', {}, h('th', {}, 'Backup'), h('td', {}, j.manifest || '-')))),
  ];
  if (j.plan && (j.plan.steps || []).length) {
    out.push(h('h2', {}, 'Restore plan'));
    out.push(table(['Step', 'State', 'Nodes', 'Detail'], j.plan.steps.map(st => h('tr', { 'data-step': st.number },
      h('td', {}, `${st.number}. ${st.name}`), h('td', {}, words(st.state, /^STEP_/)),
      h('td', {}, (st.nodes || []).join(', ')), h('td', { class: 'why' }, st.detail || '')))));
    if ((j.plan.progress || []).length) {
      out.push(table(['Node', 'Step', 'Operation', 'State', 'Progress'], j.plan.progress.map(p => h('tr', { 'data-node': p.node },
        h('td', {}, p.node), h('td', {}, p.step), h('td', {}, p.operation), h('td', {}, jobBadge(p.state)),
        h('td', {}, num(p.bytes_total) ? `${bytes(num(p.bytes_done))} of ${bytes(num(p.bytes_total))}` : '')))));
    }
    for (const f of j.plan.reseeded_from_active || []) {
      out.push(h('p', { class: 'why' }, `${f.node}: reseeded from the active copy, because its restore from the repository failed: ${f.reason}`));
    }
    if (j.plan.item_result && j.plan.item_result.counts) {
      const c = j.plan.item_result.counts;
      out.push(h('p', { 'data-items': 'counts' }, `Items: ${num(c.found)} found, ${num(c.copied)} copied, ` +
        `${num(c.skipped_existing)} skipped as existing, ${num(c.skipped_identical)} already there, ` +
        `${num(c.overwritten)} overwritten, ${num(c.kept_both)} kept both, ${num(c.exported)} exported, ` +
        `${bytes(num(c.bytes))}`));
    }
    if (j.plan.next_action) out.push(h('p', { class: 'error' }, `Next: ${j.plan.next_action}`));
  }
  out.push(h('h2', {}, 'Attempts'));
  out.push(table(['#', 'Node', 'State', 'Started', 'Ended', 'Reason'], (j.attempts || []).map(a => h('tr', {},
    h('td', {}, a.number), h('td', {}, a.node), h('td', {}, jobBadge(a.state)), h('td', {}, time(a.started_us)),
    h('td', {}, time(a.ended_us)), h('td', { class: 'why' }, a.reason || '')))));
  out.push(h('h2', {}, 'Events'));
  out.push(table(['Time', 'State', 'Event'], (j.events || []).map(e => h('tr', {},
    h('td', {}, time(e.time_us)), h('td', {}, words(e.state, /^JOB_/)), h('td', {}, e.message))), { id: 'events' }));
  return out;
}

// A line chart of `values` (with their times) as an SVG.
function chart(title, points, format) {
  const width = 460, height = 170, left = 60, right = 10, top = 24, bottom = 26;
  const svg = s('svg', { width, height, 'data-chart': title });
  svg.appendChild(s('text', { x: 8, y: 15, 'font-weight': 700 }, title));
  if (!points.length) {
    svg.appendChild(s('text', { x: left, y: 80, class: 'small' }, 'no backups yet'));
    return svg;
  }
  const t0 = Math.min(...points.map(p => p.t)), t1 = Math.max(...points.map(p => p.t), t0 + 1);
  const vmax = Math.max(...points.map(p => p.v)) || 1;
  const x = t => left + ((width - left - right) * (t - t0)) / (t1 - t0);
  const y = v => top + (height - top - bottom) * (1 - v / vmax);
  svg.appendChild(s('line', { x1: left, y1: y(0), x2: width - right, y2: y(0), stroke: '#d9dde3' }));
  svg.appendChild(s('text', { x: 4, y: y(vmax) + 4, class: 'small' }, format(vmax)));
  svg.appendChild(s('text', { x: 4, y: y(0), class: 'small' }, format(0)));
  svg.appendChild(s('polyline', { points: points.map(p => `${x(p.t)},${y(p.v)}`).join(' '), fill: 'none', stroke: '#2f5fb3', 'stroke-width': 2 }));
  for (const p of points) {
    const c = s('circle', { cx: x(p.t), cy: y(p.v), r: 3.5, fill: '#2f5fb3', 'data-value': p.v });
    c.appendChild(s('title', {}, `${time(p.t)}: ${format(p.v)}`));
    svg.appendChild(c);
  }
  svg.appendChild(s('text', { x: left, y: height - 8, class: 'small' }, time(t0)));
  return svg;
}

async function trendsPage(params) {
  const { unit, select } = await unitPicker('trends', params.unit);
  const out = [h('h1', {}, 'Trends'), h('div', { class: 'toolbar' }, 'Unit ', select)];
  if (!unit) return out.concat(h('p', {}, 'No units yet.'));
  const list = await api('ListBackups', { unit });
  const backups = (list.backups || []).filter(b => num(b.started_us)).sort((a, b) => num(a.started_us) - num(b.started_us));
  const pts = f => backups.map(b => ({ t: num(b.started_us), v: f(b) }));
  const seconds = v => (v > 0 && v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(v < 10 ? 1 : 0)} s`);
  out.push(h('p', { id: 'trend-count' }, `${backups.length} backups of ${unit}.`));
  out.push(h('div', { class: 'charts' },
    chart('Backup size', pts(b => num(b.logical_bytes)), bytes),
    chart('New bytes', pts(b => num(b.new_bytes)), bytes),
    chart('Duration', pts(b => (num(b.finished_us) - num(b.started_us)) / 1e6), seconds),
    chart('Freeze window', pts(b => num(b.freeze_window_us) / 1e6), seconds)));
  return out;
}

// ---- routing ----------------------------------------------------------------

const PAGES = {
  overview: overviewPage, topology: topologyPage, chains: chainsPage, jobs: jobsPage, job: jobPage, trends: trendsPage,
};
const LIVE = new Set(['overview', 'topology', 'jobs', 'job']);

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [page, query] = raw.split('?');
  const params = {};
  for (const part of (query || '').split('&')) {
    if (!part) continue;
    const [k, v] = part.split('=');
    try {
      params[decodeURIComponent(k)] = decodeURIComponent(v || '');
    } catch (e) { /* a malformed escape: the parameter is ignored */ }
  }
  return { page: PAGES[page] ? page : 'overview', params };
}

function showError(e) {
  const main = document.getElementById('main');
  const signIn = e.status === 401
    ? h('p', {}, 'Sign in: run ', h('code', {}, 'dagvault console login'), ' and open the address it prints, or use a browser that has your certificate.')
    : '';
  main.prepend(h('div', { class: 'error', 'data-error': e.code || 'error' }, e.message, signIn));
  document.body.dataset.loaded = 'error';
}

let timer = null;
let generation = 0;

async function route() {
  const { page, params } = parseHash();
  const mine = ++generation;
  clearTimeout(timer);
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.dataset.page === page);
  try {
    const content = await PAGES[page](params);
    if (mine !== generation) return;  // the person moved on meanwhile
    document.getElementById('main').replaceChildren(...content.flat().filter(Boolean));
    document.getElementById('refreshed').textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    document.body.dataset.loaded = page;
  } catch (e) {
    if (mine !== generation) return;
    document.getElementById('main').replaceChildren();
    showError(e);
  }
  // Live pages refresh while no dialog is open.
  if (LIVE.has(page) && document.body.dataset.loaded !== 'error') {
    timer = setTimeout(() => { if (!document.getElementById('confirm').open) route(); else timer = setTimeout(route, REFRESH_MS); }, REFRESH_MS);
  }
}

takeTokenFromAddress();
window.addEventListener('hashchange', route);
route();
