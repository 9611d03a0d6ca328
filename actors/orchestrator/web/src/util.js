// Small DOM and formatting helpers shared by the views.

// h('div', {class: 'x', onclick: fn, 'data-testid': 't'}, child, 'text', ...)
// builds an element. Attributes starting with "on" become listeners; null
// and false attributes and children are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Sets textContent only when it changes (no layout work otherwise).
export function setText(el, text) {
  const t = text === null || text === undefined ? '' : String(text);
  if (el.textContent !== t) el.textContent = t;
}

// Sets className only when it changes.
export function setClass(el, cls) {
  const c = cls || '';
  if (el.className !== c) el.className = c;
}

// Identifiers the contract allows in a routing key segment (CONTRACT §1):
// anything else is never put into a subscription or a URL.
export function validId(id) {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{1,63}$/.test(id);
}

// One formatter for every number: toLocaleString() builds a new one per
// call, which a 1,000-row table cannot afford.
const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(n) {
  return typeof n === 'number' && Number.isFinite(n) ? INT.format(Math.round(n)) : '–';
}

// "4 s", "3 min", "2 h" for an age in seconds.
export function fmtAge(sec) {
  if (typeof sec !== 'number' || !Number.isFinite(sec) || sec < 0) return '–';
  if (sec < 1) return '<1 s';
  if (sec < 90) return `${Math.floor(sec)} s`;
  if (sec < 5400) return `${Math.floor(sec / 60)} min`;
  if (sec < 172800) return `${Math.floor(sec / 3600)} h`;
  return `${Math.floor(sec / 86400)} d`;
}

const pad2 = (n) => (n < 10 ? `0${n}` : String(n));

// HH:MM:SS in the browser's time zone.
export function fmtTime(ms) {
  if (!Number.isFinite(ms)) return '–';
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

// CSS class of an ioState value: ok, unknown, or a problem.
export function ioClass(v) {
  if (v === 'ok') return 'io-ok';
  if (v === undefined || v === null || v === 'unknown') return 'io-unknown';
  if (v === 'throttled' || v === 'backpressure' || v === 'out-of-data') return 'io-warn';
  return 'io-bad';
}

export function statusClass(s) {
  switch (s) {
    case 'RUNNING': return 'st-running';
    case 'STOPPED': case 'READY': case 'NEW': return 'st-idle';
    case 'STARTING': case 'STOPPING': case 'Degraded': return 'st-warn';
    case 'FAILED': case 'Unknown': case 'REMOVED': return 'st-bad';
    default: return 'st-unknown';
  }
}

export function healthClass(s) {
  return s === 'healthy' ? 'st-running' : s === 'degraded' ? 'st-warn' : s === 'failed' ? 'st-bad' : 'st-unknown';
}
