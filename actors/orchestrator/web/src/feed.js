// Alerts and outcomes as they arrive over STOMP (newest first), for every
// swarm or for one. Entries never change: new ones are prepended, old ones
// fall off the end.
import { fmtTime, h } from './util.js';

const SHOW_MAX = 100;

export class FeedView {
  constructor(store, swarm) {
    this.store = store;
    this.swarm = swarm; // null: every swarm
    this.list = h('ol', { class: 'feed', 'data-testid': 'feed' });
    this.empty = h('p', { class: 'muted' }, 'Nothing yet: alerts and outcomes show here as they arrive.');
    this.el = h('div', null, this.empty, this.list);
    this.newest = null;
    this.update();
  }

  update() {
    const fresh = [];
    for (const e of this.store.feed) {
      if (e === this.newest) break;
      if (this.swarm === null || e.swarm === this.swarm) fresh.push(e);
    }
    if (this.store.feed.length) this.newest = this.store.feed[0];
    for (let i = fresh.length - 1; i >= 0; i--) this.list.prepend(item(fresh[i], this.swarm === null));
    while (this.list.childElementCount > SHOW_MAX) this.list.lastElementChild.remove();
    this.empty.hidden = this.list.childElementCount > 0;
  }
}

function item(e, withSwarm) {
  const env = e.env;
  const d = env.data || {};
  const scope = env.scope || {};
  const who = [scope.role, scope.instance].filter((x) => x && x !== 'ALL').join(' ');
  if (e.kind === 'outcome') {
    const status = typeof d.status === 'string' ? d.status : '?';
    const bad = /fail|error/i.test(status);
    return h('li', { class: `feed-item outcome ${bad ? 'bad' : ''}`, 'data-testid': 'feed-item',
      'data-kind': 'outcome', 'data-type': env.type, 'data-status': status, 'data-cid': env.correlationId || '' },
    h('time', null, fmtTime(e.at)),
    h('span', { class: `badge ${bad ? 'b-bad' : 'b-ok'}` }, 'outcome'),
    withSwarm && scope.swarmId ? h('a', { href: `#/swarms/${scope.swarmId}`, class: 'swarm' }, scope.swarmId) : null,
    h('b', null, env.type), ' → ', h('b', { class: 'status' }, status),
    d.retryable ? h('span', { class: 'muted' }, ' (retryable)') : null,
    h('span', { class: 'muted small' }, ` ${who} · ${env.correlationId || ''}`));
  }
  const level = ['info', 'warn', 'error'].includes(d.level) ? d.level : 'info';
  return h('li', { class: `feed-item alert lvl-${level}`, 'data-testid': 'feed-item', 'data-kind': 'alert',
    'data-code': d.code || '' },
  h('time', null, fmtTime(e.at)),
  h('span', { class: `badge b-${level}` }, `alert ${level}`),
  withSwarm && scope.swarmId ? h('a', { href: `#/swarms/${scope.swarmId}`, class: 'swarm' }, scope.swarmId) : null,
  h('b', null, d.code || 'alert'), ' ', d.message || '',
  h('span', { class: 'muted small' }, ` ${who}`));
}
