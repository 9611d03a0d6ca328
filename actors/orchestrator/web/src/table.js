// A table whose rows are keyed: update() touches only the cells whose text
// or class changed, adds and removes rows, and moves rows only when the
// order of keys changed. With 1,000 workers a poll that changes a few tps
// values costs a few text writes, not a new table.
import { h } from './util.js';

// columns: [{title, get(row) -> text, cls?(row) -> class, href?(row) -> link,
//            num?: true, testid?: string}]
// opts: {key(row) -> string, rowClass?(row) -> class, rowTestId?: string,
//        signature?(row) -> string: rows whose signature did not change are
//        skipped; empty: text when there are no rows}
export class KeyedTable {
  constructor(columns, opts) {
    this.columns = columns;
    this.opts = opts;
    this.rows = new Map(); // key -> {tr, cells: [{td, target}], data}
    this.order = [];
    this.filter = null;
    this.tbody = h('tbody');
    this.emptyRow = h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, opts.empty || 'nothing yet'));
    this.el = h('table', { class: `grid ${opts.className || ''}`, 'data-testid': opts.testid || null },
      h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.num ? 'num' : null, title: c.help || null }, c.title)))),
      this.tbody);
    this.tbody.append(this.emptyRow);
    this.shown = 0;
  }

  makeRow(key) {
    const tr = h('tr', { 'data-key': key, 'data-testid': this.opts.rowTestId || null });
    const cells = this.columns.map((c) => {
      const td = h('td', { class: c.num ? 'num' : null, 'data-col': c.id || null });
      let target = td;
      if (c.href) {
        target = h('a');
        td.append(target);
      }
      tr.append(td);
      return { td, target, text: null, cls: null, href: null };
    });
    return { tr, cells, data: null, sig: null, cls: null, hidden: false };
  }

  // The rows' cells again, for values that change with time (ages).
  refreshCells(colIds) {
    const idx = this.columns.map((c, i) => (colIds.includes(c.id) ? i : -1)).filter((i) => i >= 0);
    for (const r of this.rows.values()) {
      for (const i of idx) this.fill(r, i);
    }
  }

  // The last text, class and link of each cell are kept here: comparing
  // with them costs no DOM access at all.
  fill(r, i) {
    const c = this.columns[i];
    const cell = r.cells[i];
    const v = c.get(r.data);
    const text = v === null || v === undefined ? '' : String(v);
    if (cell.text !== text) {
      cell.text = text;
      cell.target.textContent = text;
    }
    if (c.href) {
      const href = c.href(r.data);
      if (cell.href !== href) {
        cell.href = href;
        cell.target.setAttribute('href', href);
      }
    }
    if (c.cls) {
      const cls = `${c.num ? 'num ' : ''}${c.cls(r.data) || ''}`.trim();
      if (cell.cls !== cls) {
        cell.cls = cls;
        cell.td.className = cls;
      }
    }
  }

  update(list) {
    const keys = [];
    const seen = new Set();
    for (const row of list) {
      const key = this.opts.key(row);
      if (seen.has(key)) continue; // a duplicate key would share a row
      seen.add(key);
      keys.push(key);
      let r = this.rows.get(key);
      if (!r) {
        r = this.makeRow(key);
        this.rows.set(key, r);
      }
      r.data = row;
      // An unchanged row (the usual case between two fulls) costs nothing.
      const sig = this.opts.signature ? this.opts.signature(row) : null;
      if (sig !== null && sig === r.sig) continue;
      r.sig = sig;
      for (let i = 0; i < this.columns.length; i++) this.fill(r, i);
      if (this.opts.rowClass) {
        const cls = this.opts.rowClass(row);
        if (r.cls !== cls) {
          r.cls = cls;
          r.tr.className = cls;
        }
      }
    }
    for (const [key, r] of this.rows) {
      if (!seen.has(key)) {
        r.tr.remove();
        this.rows.delete(key);
      }
    }
    const sameOrder = keys.length === this.order.length && keys.every((k, i) => k === this.order[i]);
    if (!sameOrder) {
      // appendChild moves a row that is already there: one pass, in order.
      const frag = document.createDocumentFragment();
      for (const k of keys) frag.append(this.rows.get(k).tr);
      this.tbody.append(frag);
      this.order = keys;
    }
    this.applyFilter();
  }

  // Shows only rows whose text matches (case-insensitive); null: all.
  setFilter(text) {
    this.filter = text ? text.toLowerCase() : null;
    this.applyFilter();
  }

  applyFilter() {
    let shown = 0;
    for (const r of this.rows.values()) {
      const match = !this.filter || r.cells.some((c) => c.text.toLowerCase().includes(this.filter));
      if (r.hidden !== !match) {
        r.hidden = !match;
        r.tr.hidden = !match;
      }
      if (match) shown++;
    }
    this.shown = shown;
    const empty = this.rows.size === 0;
    if (empty && !this.emptyRow.isConnected) this.tbody.append(this.emptyRow);
    if (!empty && this.emptyRow.isConnected) this.emptyRow.remove();
  }
}
