// The tps of one swarm over the last minutes, drawn on a canvas from the
// controller's status-deltas (store.tps). A step line: tps holds until the
// next delta says otherwise. Redrawn at most once per animation frame, and
// once a second so the time axis moves.
import { h } from './util.js';
import { TPS_WINDOW_MS } from './store.js';

export class TpsChart {
  constructor() {
    this.canvas = h('canvas', { class: 'chart', 'data-testid': 'tps-chart', height: 160 });
    this.el = h('div', { class: 'chart-box' }, this.canvas);
    this.points = [];
    this.pending = false;
  }

  set(points) {
    this.points = points || [];
    this.canvas.dataset.samples = String(this.points.length);
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(200, c.clientWidth || 600);
    const hgt = 160;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(this.el);
    const fg = css.getPropertyValue('--chart-line').trim() || '#2b7de9';
    const grid = css.getPropertyValue('--chart-grid').trim() || '#ddd';
    const text = css.getPropertyValue('--muted').trim() || '#777';
    const left = 48, right = 8, top = 8, bottom = 20;
    const pw = w - left - right, ph = hgt - top - bottom;
    const now = Date.now();
    const t0 = now - TPS_WINDOW_MS;
    const pts = this.points;
    let max = 0;
    for (const [, v] of pts) if (v > max) max = v;
    const ymax = 4 * niceStep((max * 1.1) / 4);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = text;
    g.strokeStyle = grid;
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4;
      g.beginPath();
      g.moveTo(left, Math.round(y) + 0.5);
      g.lineTo(left + pw, Math.round(y) + 0.5);
      g.stroke();
      g.fillText(fmtTick((ymax * i) / 4), left - 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let m = 0; m <= TPS_WINDOW_MS / 60000; m++) {
      const x = left + pw - (pw * m * 60000) / TPS_WINDOW_MS;
      g.fillText(m === 0 ? 'now' : `-${m} min`, x, top + ph + 5);
    }
    if (pts.length === 0) {
      g.textBaseline = 'middle';
      g.fillText('no status-delta yet', left + pw / 2, top + ph / 2);
      return;
    }
    const X = (t) => left + (pw * (t - t0)) / TPS_WINDOW_MS;
    const Y = (v) => top + ph - (ph * v) / ymax;
    g.save();
    g.beginPath();
    g.rect(left, top, pw, ph);
    g.clip();
    g.strokeStyle = fg;
    g.lineWidth = 2;
    g.beginPath();
    let prev = null;
    for (const [t, v] of pts) {
      const x = X(t), y = Y(v);
      if (prev === null) g.moveTo(x, y);
      else {
        g.lineTo(x, prev); // hold the previous value until this delta
        g.lineTo(x, y);
      }
      prev = y;
    }
    g.lineTo(X(now), prev);
    g.stroke();
    g.restore();
  }
}

// The smallest of 1, 2, 2.5, 5 times a power of ten that is at least v,
// and a whole number (tps are integers): the y axis has four such steps.
function niceStep(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v && Number.isInteger(m * p)) return m * p;
  return 10 * p;
}

function fmtTick(v) {
  if (v >= 10000) return `${Math.round(v / 1000)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return String(Math.round(v));
}
