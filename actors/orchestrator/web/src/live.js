// Live updates over RabbitMQ's web-STOMP, as the read-only user ph-observer
// (CONTRACT §7). The page subscribes to exactly three kinds of destination:
//   /exchange/ph.control/event.metric.status-delta.<swarmId>.swarm-controller.*
//       one per swarm the page shows (the controller's small aggregate);
//   /exchange/ph.control/event.alert.alert.#
//   /exchange/ph.control/event.outcome.#
// Never a per-worker key: the broker refuses those to ph-observer anyway,
// and RabbitMQ 3.10 answers a refused SUBSCRIBE by closing the WebSocket
// without an ERROR frame, so a page that asked for one would lose its
// connection over and over. Swarm ids are checked before they go into a
// destination for the same reason.
import { Client } from '@stomp/stompjs';
import { validId } from './util.js';

const QUICK_CLOSE_MS = 3000;

export class Live {
  // cfg: /api/ui-config ({stompUrl, login, passcode, vhost, exchange});
  // on: {state(state, detail), delta(env), outcome(env), alert(env)}.
  constructor(cfg, on) {
    this.cfg = cfg;
    this.on = on;
    this.exchange = /^[A-Za-z0-9_.-]+$/.test(cfg.exchange || '') ? cfg.exchange : 'ph.control';
    this.wanted = new Set(); // swarm ids whose deltas the page wants
    this.subs = new Map(); // destination -> StompSubscription
    this.lastSubscribeAt = 0;
    this.quickCloses = 0;
    this.messages = 0;
    this.errorAt = 0;
    this.client = null;
  }

  destination(key) {
    return `/exchange/${this.exchange}/${key}`;
  }

  deltaKey(id) {
    return `event.metric.status-delta.${id}.swarm-controller.*`;
  }

  start() {
    const c = new Client({
      brokerURL: this.cfg.stompUrl,
      connectHeaders: { login: this.cfg.login, passcode: this.cfg.passcode, host: this.cfg.vhost || '/' },
      reconnectDelay: 3000,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      debug: () => {},
    });
    c.onConnect = () => {
      this.subs.clear();
      this.on.state('live', `connected to ${this.cfg.stompUrl} as ${this.cfg.login}`);
      this.reconcile();
    };
    c.onStompError = (frame) => {
      // E.g. a refused login; the socket closes next, and the message stays.
      this.errorAt = Date.now();
      this.on.state('error', `the broker said: ${frame.headers.message || 'error'}; retrying`);
    };
    c.onWebSocketClose = () => {
      const quick = this.lastSubscribeAt && Date.now() - this.lastSubscribeAt < QUICK_CLOSE_MS;
      this.quickCloses = quick ? this.quickCloses + 1 : 0;
      this.subs.clear();
      if (this.quickCloses >= 2) {
        // Refused subscriptions close the socket (see above): back off.
        c.reconnectDelay = 30000;
        this.on.state('error', 'the broker closes the connection right after the subscriptions ' +
          '(a refused subscription?); retrying every 30 s');
      } else if (!this.errorAt || Date.now() - this.errorAt > 2000) {
        this.on.state('closed', 'connection closed; reconnecting');
      }
    };
    c.onWebSocketError = () => {
      this.on.state('closed', `cannot reach ${this.cfg.stompUrl}; retrying`);
    };
    this.client = c;
    this.on.state('connecting', `connecting to ${this.cfg.stompUrl}`);
    c.activate();
  }

  // The swarms whose deltas the page shows now.
  setSwarms(ids) {
    const next = new Set(ids.filter(validId));
    if (next.size === this.wanted.size && [...next].every((id) => this.wanted.has(id))) return;
    this.wanted = next;
    this.reconcile();
  }

  reconcile() {
    const c = this.client;
    if (!c || !c.connected) return;
    const want = new Map();
    want.set(this.destination('event.alert.alert.#'), (m) => this.dispatch(m));
    want.set(this.destination('event.outcome.#'), (m) => this.dispatch(m));
    for (const id of this.wanted) want.set(this.destination(this.deltaKey(id)), (m) => this.dispatch(m));
    for (const [dest, sub] of this.subs) {
      if (!want.has(dest)) {
        sub.unsubscribe();
        this.subs.delete(dest);
      }
    }
    for (const [dest, fn] of want) {
      if (this.subs.has(dest)) continue;
      this.subs.set(dest, c.subscribe(dest, fn));
      this.lastSubscribeAt = Date.now();
    }
    if (this.quickCloses === 0) c.reconnectDelay = 3000;
  }

  dispatch(msg) {
    let env;
    try {
      env = JSON.parse(msg.body);
    } catch {
      return; // not an envelope: nothing to show
    }
    if (!env || typeof env !== 'object') return;
    this.messages++;
    if (this.lastSubscribeAt && Date.now() - this.lastSubscribeAt > QUICK_CLOSE_MS) this.quickCloses = 0;
    const scope = env.scope || {};
    if (env.kind === 'metric' && env.type === 'status-delta' && scope.role === 'swarm-controller') {
      this.on.delta(env);
    } else if (env.kind === 'outcome') {
      this.on.outcome(env);
    } else if (env.kind === 'event' && env.type === 'alert') {
      this.on.alert(env);
    }
  }

  // The subscribed destinations (shown in the page for the curious).
  destinations() {
    return [...this.subs.keys()];
  }
}
