// What the page knows: the swarms' projections from the API, kept current
// between polls by the controllers' status-deltas; each swarm's tps history
// (from deltas); the feed of alerts and outcomes. Views read it and are told
// what changed through listeners.

export const TPS_WINDOW_MS = 5 * 60 * 1000;
const TPS_MAX_POINTS = 3000;
const FEED_MAX = 300;

export class Store {
  constructor() {
    this.swarms = new Map(); // id -> swarm (API projection, merged with deltas)
    this.listed = false; // a /api/swarms answer has arrived
    this.tps = new Map(); // id -> [[ms, tps], ...]
    this.feed = []; // newest first: {at, kind, swarm, env}
    this.listeners = new Set();
    this.deltas = 0;
  }

  listen(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(what, id) {
    for (const fn of this.listeners) fn(what, id);
  }

  // The list from GET /api/swarms: replaces the known set.
  setList(list, at) {
    const seen = new Set();
    for (const s of list) {
      seen.add(s.id);
      this.merge(s, at, false);
    }
    for (const id of [...this.swarms.keys()]) if (!seen.has(id)) this.swarms.delete(id);
    this.listed = true;
    this.emit('list');
  }

  // One swarm from GET /api/swarms/{id}, with its workers.
  setSwarm(s, at) {
    this.merge(s, at, true);
    this.emit('swarm', s.id);
  }

  forget(id) {
    if (this.swarms.delete(id)) this.emit('list');
  }

  merge(s, at, withWorkers) {
    const old = this.swarms.get(s.id);
    const next = { ...s, fetchedAt: at };
    if (!withWorkers && old && old.workersAt) {
      // The list carries workers too, but the swarm view's own fetch is the
      // one it renders from; keep whichever is newer.
      if (old.workersAt > at) next.workers = old.workers;
    }
    next.workersAt = withWorkers || !old ? at : Math.max(old.workersAt || 0, at);
    // A delta newer than this answer still holds the freshest aggregate.
    if (old && old.deltaAt && old.deltaAt > at - (s.heartbeatAgeSec || 0) * 1000) {
      Object.assign(next, pickDelta(old));
      next.deltaAt = old.deltaAt;
    }
    if (old && old.deltaAt) next.deltaAt = old.deltaAt;
    this.swarms.set(s.id, next);
    if (!this.tps.has(s.id)) this.tps.set(s.id, []);
  }

  // A controller status-delta from STOMP.
  applyDelta(env, at) {
    const id = env.scope && env.scope.swarmId;
    if (!id) return;
    const data = env.data || {};
    const ctx = data.context || {};
    this.deltas++;
    const s = this.swarms.get(id) || { id, workers: [], queues: [], complete: false, health: 'healthy' };
    const upd = {
      status: ctx.swarmStatus ?? s.status,
      state: ctx.state ?? s.state,
      totals: ctx.totals ?? s.totals,
      roles: ctx.roles ?? s.roles,
      watermark: ctx.watermark ?? s.watermark,
      maxStalenessSec: ctx.maxStalenessSec ?? s.maxStalenessSec,
      scenario: ctx.scenario ?? s.scenario,
      journal: ctx.journal ?? s.journal,
      tps: typeof data.tps === 'number' ? data.tps : s.tps,
      ioState: data.ioState ?? s.ioState,
      workEnabled: typeof data.enabled === 'boolean' ? data.enabled : s.workEnabled,
      controller: env.scope.instance || s.controller,
      lastStatusAt: env.timestamp || s.lastStatusAt,
      health: 'healthy', // a controller status just arrived
    };
    this.swarms.set(id, { ...s, ...upd, deltaAt: at });
    if (typeof data.tps === 'number') this.addTps(id, at, data.tps);
    if (ctx.swarmStatus === 'REMOVED') this.swarms.delete(id);
    this.emit('delta', id);
  }

  addTps(id, at, tps) {
    let pts = this.tps.get(id);
    if (!pts) this.tps.set(id, (pts = []));
    pts.push([at, tps]);
    const cut = at - TPS_WINDOW_MS;
    let drop = 0;
    while (drop < pts.length && pts[drop][0] < cut) drop++;
    if (pts.length - drop > TPS_MAX_POINTS) drop = pts.length - TPS_MAX_POINTS;
    if (drop > 0) pts.splice(0, drop);
  }

  addFeed(kind, env, at) {
    const swarm = env.scope && env.scope.swarmId;
    this.feed.unshift({ at, kind, swarm, env });
    if (this.feed.length > FEED_MAX) this.feed.length = FEED_MAX;
    this.emit('feed', swarm);
  }

  // Seconds since the swarm's controller last reported, as of `now`.
  heartbeatAge(s, now) {
    let base = null;
    if (typeof s.heartbeatAgeSec === 'number' && s.fetchedAt) base = s.fetchedAt - s.heartbeatAgeSec * 1000;
    if (s.deltaAt && (base === null || s.deltaAt > base)) base = s.deltaAt;
    return base === null ? null : Math.max(0, (now - base) / 1000);
  }
}

function pickDelta(s) {
  const keys = ['status', 'state', 'totals', 'roles', 'watermark', 'maxStalenessSec', 'scenario',
    'journal', 'tps', 'ioState', 'workEnabled', 'lastStatusAt'];
  const o = {};
  for (const k of keys) if (k in s) o[k] = s[k];
  return o;
}
