// The swarm's pipeline drawn from its workers' queues (GET /api/swarms/{id}
// `queues`: [{role, in: [...], out: [...]}]): one box per role, an arrow
// from A to B for each queue A writes and B reads, queues nobody writes or
// reads as loose ends. Columns follow the longest path from a source, so
// generator -> moderator -> processor -> postprocessor reads left to right.
// Without queues (the controllers have not reported any yet) the roles are
// drawn from the per-role summaries, unconnected.
import { fmtInt, h } from './util.js';

const NS = 'http://www.w3.org/2000/svg';
const BW = 156, BH = 50, GX = 110, GY = 18, PAD = 12, LOOSE = 86;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function layout(queues, roleNames) {
  const nodes = (queues.length ? queues.map((q) => q.role) : roleNames).map((role, i) => ({
    role, i, in: (queues[i] && queues[i].in) || [], out: (queues[i] && queues[i].out) || [], depth: 0,
  }));
  const edges = [];
  for (const a of nodes) {
    for (const q of a.out) {
      for (const b of nodes) if (b !== a && b.in.includes(q)) edges.push({ a, b, q });
    }
  }
  // Longest path from a source; n passes bound it when the graph has a cycle.
  for (let pass = 0; pass < nodes.length; pass++) {
    let changed = false;
    for (const e of edges) {
      if (e.b.depth < e.a.depth + 1 && e.a.depth + 1 < nodes.length) {
        e.b.depth = e.a.depth + 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const cols = [];
  if (edges.length === 0) {
    // Nothing connects the roles: one row, in the order given.
    nodes.forEach((n, i) => (cols[i] = [n]));
  } else {
    for (const n of nodes) (cols[n.depth] = cols[n.depth] || []).push(n);
  }
  const hasLooseIn = nodes.some((n) => n.in.some((q) => !edges.some((e) => e.b === n && e.q === q)));
  const x0 = PAD + (hasLooseIn ? LOOSE : 0);
  const gap = edges.length === 0 ? GY : GX;
  cols.forEach((col, d) => col && col.forEach((n, k) => {
    n.x = x0 + d * (BW + gap);
    n.y = PAD + k * (BH + GY);
  }));
  return { nodes, edges, cols };
}

export function renderPipeline(queues, roles) {
  const roleNames = Object.keys(roles || {});
  const list = Array.isArray(queues) ? queues.filter((q) => q && typeof q.role === 'string') : [];
  const box = h('div', { class: 'pipeline', 'data-testid': 'pipeline' });
  if (list.length === 0 && roleNames.length === 0) {
    box.append(h('p', { class: 'muted' }, 'No roles reported yet.'));
    return box;
  }
  const { nodes, edges } = layout(list, roleNames);
  let w = 0, hgt = 0;
  for (const n of nodes) {
    w = Math.max(w, n.x + BW + PAD);
    hgt = Math.max(hgt, n.y + BH + PAD);
  }
  const looseOut = nodes.some((n) => n.out.some((q) => !edges.some((e) => e.a === n && e.q === q)));
  if (looseOut) w += LOOSE;
  const svg = s('svg', { width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: 'img',
    'aria-label': 'pipeline of the swarm\'s roles' });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-head' }))));
  for (const e of edges) {
    const x1 = e.a.x + BW, y1 = e.a.y + BH / 2, x2 = e.b.x, y2 = e.b.y + BH / 2;
    const back = x2 <= x1;
    const d = back
      ? `M${x1},${y1} C${x1 + 40},${y1 - 60} ${x2 - 40},${y2 - 60} ${x2},${y2}`
      : `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`;
    svg.append(s('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }));
    svg.append(s('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6 - (back ? 40 : 0), class: 'edge-label',
      'text-anchor': 'middle' }, short(e.q)));
  }
  for (const n of nodes) {
    for (const q of n.in) {
      if (edges.some((e) => e.b === n && e.q === q)) continue;
      const y = n.y + BH / 2;
      svg.append(s('path', { d: `M${n.x - LOOSE + 6},${y} L${n.x},${y}`, class: 'edge loose', 'marker-end': 'url(#arrow)' }));
      svg.append(s('text', { x: n.x - LOOSE / 2, y: y - 6, class: 'edge-label', 'text-anchor': 'middle' }, short(q)));
    }
    for (const q of n.out) {
      if (edges.some((e) => e.a === n && e.q === q)) continue;
      const y = n.y + BH / 2;
      svg.append(s('path', { d: `M${n.x + BW},${y} L${n.x + BW + LOOSE - 6},${y}`, class: 'edge loose', 'marker-end': 'url(#arrow)' }));
      svg.append(s('text', { x: n.x + BW + LOOSE / 2, y: y - 6, class: 'edge-label', 'text-anchor': 'middle' }, short(q)));
    }
    const g = s('g', { class: 'node', 'data-role': n.role });
    g.append(s('rect', { x: n.x, y: n.y, width: BW, height: BH, rx: 6 }));
    g.append(s('text', { x: n.x + BW / 2, y: n.y + 20, 'text-anchor': 'middle', class: 'node-title' }, n.role));
    g.append(s('text', { x: n.x + BW / 2, y: n.y + 38, 'text-anchor': 'middle', class: 'node-sub' }, subText(roles, n.role)));
    svg.append(g);
  }
  box.append(svg);
  if (list.length === 0) {
    box.append(h('p', { class: 'muted small' },
      'The controllers have not reported worker queues yet: roles are shown without their connections.'));
  }
  return box;
}

function subText(roles, role) {
  const r = (roles || {})[role] || {};
  return r.count !== undefined ? `${fmtInt(r.count)} workers · ${fmtInt(r.tps)} tps` : '';
}

// The per-role numbers of a drawn pipeline, from a newer summary.
export function updatePipeline(box, roles) {
  for (const g of box.querySelectorAll('g.node')) {
    const sub = g.querySelector('.node-sub');
    const text = subText(roles, g.getAttribute('data-role'));
    if (sub && sub.textContent !== text) sub.textContent = text;
  }
}

function short(q) {
  return q.length > 22 ? `${q.slice(0, 10)}…${q.slice(-10)}` : q;
}
