// The orchestrator's web UI in a real browser: Debian's chromium, headless,
// driven by playwright-core (no browser download). Run by
// tests/amqp/test_ui_browser.sh against a live swarm; on its own:
//
//   node ui_test.mjs --base http://127.0.0.1:PORT/ --swarm ID --workers N \
//        --out DIR --mgmt-port PORT --mgmt-credentials FILE [--pages 3]
//
// Several UI instances (pages) open on one swarm:
//   - each page shows every worker, is live over web-STOMP and loads nothing
//     from anywhere but this machine; no page error;
//   - through the management API (as the ph admin user, whose password is
//     read from FILE, never argv): each UI connection (user ph-observer) has
//     exactly the three allowed bindings (the swarm's controller deltas,
//     alerts, outcomes), and no ph-observer queue is bound to anything else;
//   - an alert published on ph.control shows in every page; the refresh
//     button answers;
//   - stop and start from the UI: the outcome shows in the page that clicked
//     and, over STOMP, in the others; the status changes in every page, and
//     so does every worker's row (the page asks for a fresh status-full).
// Screenshots go to --out. Prints "PASS: ..." / "FAIL: ..." lines and ends
// with "ui_test: N passed, M failed"; exits 1 when a check failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

// The flags the machine notes ask for (no background networking: the
// sandbox has no network beyond this machine; --no-sandbox: run as root).
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ALLOWED_KEYS = (swarm) => [
  `event.metric.status-delta.${swarm}.swarm-controller.*`,
  'event.alert.alert.#',
  'event.outcome.#',
];

function parseArgs(argv) {
  const o = { pages: 3, chromium: process.env.PH_CHROMIUM || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
    o[k] = argv[i + 1];
  }
  for (const k of ['base', 'swarm', 'workers', 'out', 'mgmtPort', 'mgmtCredentials']) {
    if (!o[k]) throw new Error(`missing --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  o.workers = Number(o.workers);
  o.pages = Number(o.pages);
  return o;
}

const opt = parseArgs(process.argv.slice(2));
let passed = 0;
let failed = 0;
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);

function pass(name) {
  passed++;
  console.log(`PASS: ${name} (${secs()} s)`);
}
function fail(name, why) {
  failed++;
  console.log(`FAIL: ${name}: ${why}`);
}
async function check(name, fn) {
  try {
    const detail = await fn();
    pass(detail ? `${name}: ${detail}` : name);
    return true;
  } catch (e) {
    fail(name, e.message.split('\n').slice(0, 6).join(' | '));
    return false;
  }
}

// ---- the management API ------------------------------------------------------

const cred = Object.fromEntries(fs.readFileSync(opt.mgmtCredentials, 'utf8').split('\n')
  .filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const auth = `Basic ${Buffer.from(`${cred.user}:${cred.password}`).toString('base64')}`;

async function mgmt(p) {
  const res = await fetch(`http://127.0.0.1:${opt.mgmtPort}/api${p}`, { headers: { Authorization: auth } });
  if (!res.ok) throw new Error(`management API ${p}: HTTP ${res.status}`);
  return res.json();
}

// connection name -> sorted binding keys of the queues it consumes from
// ph.control, for the connections of ph-observer.
async function observerBindings() {
  const conns = (await mgmt('/connections')).filter((c) => c.user === 'ph-observer');
  const consumers = (await mgmt('/consumers')).filter((c) => c.channel_details && c.channel_details.user === 'ph-observer');
  const byConn = new Map(conns.map((c) => [c.name, []]));
  for (const c of consumers) {
    const q = c.queue.name;
    const binds = await mgmt(`/queues/%2F/${encodeURIComponent(q)}/bindings`);
    const keys = byConn.get(c.channel_details.connection_name) || [];
    for (const b of binds) if (b.source === 'ph.control') keys.push(b.routing_key);
    byConn.set(c.channel_details.connection_name, keys);
  }
  for (const v of byConn.values()) v.sort();
  return byConn;
}

// ---- the pages ---------------------------------------------------------------

const base = opt.base.endsWith('/') ? opt.base : `${opt.base}/`;
const baseHost = new URL(base).hostname;
fs.mkdirSync(opt.out, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ph-chromium-profile-'));
const problems = []; // page errors, console errors, requests leaving this machine

async function shot(page, name) {
  const file = path.join(opt.out, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

function local(url) {
  try {
    const u = new URL(url);
    if (u.protocol === 'data:' || u.protocol === 'about:') return true;
    return ['127.0.0.1', 'localhost', '[::1]', baseHost].includes(u.hostname);
  } catch {
    return false;
  }
}

function watch(page, name) {
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!local(r.url())) problems.push(`${name}: request to ${r.url()}`);
  });
  page.on('websocket', (ws) => {
    if (!local(ws.url())) problems.push(`${name}: WebSocket to ${ws.url()}`);
  });
}

const swarmView = `${base}#/swarms/${opt.swarm}`;
const W = opt.workers;
let ctx;
try {
  // A fresh, empty profile (--user-data-dir) for every run.
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: opt.chromium,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1400, height: 1000 },
    timeout: 30000,
  });
  const pages = [];
  for (let i = 0; i < opt.pages; i++) {
    const p = i === 0 ? (ctx.pages()[0] || await ctx.newPage()) : await ctx.newPage();
    watch(p, `page ${i + 1}`);
    pages.push(p);
  }
  // The last page starts at the swarm list and goes to the swarm by its link.
  const listPage = pages[pages.length - 1];
  await Promise.all(pages.map((p) => p.goto(p === listPage ? base : swarmView)));

  await check('the swarm list shows the swarm, live', async () => {
    const row = listPage.locator(`[data-testid=swarm-row][data-key="${opt.swarm}"]`);
    await row.waitFor({ timeout: 20000 });
    await listPage.waitForFunction((id) => {
      const r = document.querySelector(`[data-testid=swarm-row][data-key="${id}"]`);
      return r && r.textContent.includes('RUNNING') && r.textContent.includes('live');
    }, opt.swarm, { timeout: 20000 });
    const text = (await row.innerText()).replace(/\s+/g, ' ');
    if (!text.includes(String(W))) throw new Error(`the row does not show ${W} workers: ${text}`);
    return text;
  });
  await shot(listPage, 'list');
  await listPage.click(`[data-testid=swarm-row][data-key="${opt.swarm}"] a`);

  for (let i = 0; i < pages.length; i++) {
    const p = pages[i];
    await check(`page ${i + 1} shows all ${W} workers and is live`, async () => {
      await p.waitForFunction((n) => document.querySelectorAll('[data-testid=worker-row]').length === n,
        W, { timeout: 30000 });
      await p.waitForFunction(() => document.querySelector('[data-testid=stomp-state]').dataset.state === 'live',
        null, { timeout: 20000 });
      await p.waitForFunction(() => /live/.test(document.querySelector('[data-testid=swarm-live]').textContent),
        null, { timeout: 20000 });
      const status = await p.locator('[data-testid=swarm-status]').innerText();
      const roles = await p.locator('[data-testid=role-row]').count();
      const count = await p.locator('[data-testid=worker-count]').innerText();
      if (status !== 'RUNNING') throw new Error(`status ${status}, not RUNNING`);
      return `${count}, ${roles} roles, status ${status}`;
    });
  }
  await shot(pages[0], 'swarm-running');

  await check('each UI connection binds only the aggregate patterns', async () => {
    const want = ALLOWED_KEYS(opt.swarm).slice().sort();
    let byConn = new Map();
    // The management API learns about consumers from the node's statistics,
    // every few seconds.
    for (let i = 0; i < 60; i++) {
      byConn = await observerBindings();
      const complete = [...byConn.values()].filter((k) => k.length >= want.length).length;
      if (byConn.size >= opt.pages && complete >= opt.pages) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (byConn.size !== opt.pages) throw new Error(`${byConn.size} ph-observer connections, expected ${opt.pages}`);
    for (const [conn, keys] of byConn) {
      if (JSON.stringify(keys) !== JSON.stringify(want)) {
        throw new Error(`connection ${conn} binds ${JSON.stringify(keys)}, expected exactly ${JSON.stringify(want)}`);
      }
    }
    // And no queue of ph-observer is bound to ph.control with another key,
    // consumed or not.
    const all = await mgmt('/bindings/%2F');
    const allowed = /^(event\.metric\.status-delta\.[A-Za-z0-9_-]+\.swarm-controller\.\*|event\.alert\.alert\.#|event\.outcome\.#)$/;
    const bad = all.filter((b) => b.source === 'ph.control' && /^(stomp-subscription|amq\.gen)-/.test(b.destination) &&
      !allowed.test(b.routing_key));
    if (bad.length) throw new Error(`observer queues bound with other keys: ${bad.map((b) => b.routing_key).join(', ')}`);
    return `${byConn.size} connections, each ${want.join(' ')}`;
  });

  await check('an alert on ph.control shows in every page (over STOMP)', async () => {
    // Published by the test through the management API, as the admin: the
    // pages only read. Shaped like the controller's io.out-of-data alert.
    const code = `io.out-of-data`;
    const marker = `browser test alert ${Date.now()}`;
    const env = {
      timestamp: new Date().toISOString(), version: '1', kind: 'event', type: 'alert', origin: 'ui-test',
      scope: { swarmId: opt.swarm, role: 'generator', instance: 'generator-1' },
      correlationId: null, idempotencyKey: null,
      data: { level: 'warn', code, message: marker, context: { dataset: 'browser-test' } },
    };
    const res = await fetch(`http://127.0.0.1:${opt.mgmtPort}/api/exchanges/%2F/ph.control/publish`, {
      method: 'POST', headers: { Authorization: auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ properties: { content_type: 'application/json' },
        routing_key: `event.alert.alert.${opt.swarm}.generator.generator-1`,
        payload: JSON.stringify(env), payload_encoding: 'string' }),
    });
    const routed = res.ok && (await res.json()).routed;
    if (!routed) throw new Error(`the management API did not route the alert (HTTP ${res.status})`);
    for (const p of pages) {
      await p.locator('[data-testid=feed-item][data-kind=alert]', { hasText: marker }).waitFor({ timeout: 15000 });
    }
    return `${code} in ${pages.length} pages`;
  });

  await check('the refresh button asks the controllers for their fulls (POST /api/control-plane/refresh)', async () => {
    await pages[0].click('[data-testid=btn-refresh]');
    const n = pages[0].locator('[data-testid=notice]');
    await pages[0].waitForFunction(() => /^Refresh: /.test(document.querySelector('[data-testid=notice]').textContent),
      null, { timeout: 10000 });
    return await n.innerText();
  });

  // ---- stop and start from the UI ----
  for (const [cmd, signal, outcome, status, enabled] of [['stop', 'swarm-stop', 'Stopped', 'STOPPED', 'no'],
    ['start', 'swarm-start', 'Running', 'RUNNING', 'yes']]) {
    let cid = '';
    await check(`${cmd} from the UI: the outcome shows in the page that clicked`, async () => {
      await pages[0].click(`[data-testid=btn-${cmd}]`);
      const res = pages[0].locator('[data-testid=command-result]');
      await pages[0].waitForFunction((sig) => {
        const r = document.querySelector('[data-testid=command-result]');
        return r.dataset.signal === sig && (r.dataset.state === 'done' || r.dataset.state === 'failed');
      }, signal, { timeout: 30000 });
      const state = await res.getAttribute('data-state');
      const got = await res.getAttribute('data-status');
      cid = await res.getAttribute('data-cid');
      if (state !== 'done' || got !== outcome) throw new Error(`${await res.innerText()} (wanted ${outcome})`);
      return await res.innerText();
    });
    for (let i = 0; i < pages.length; i++) {
      await check(`${cmd}: page ${i + 1} shows status ${status} and the outcome${i ? ' (over STOMP)' : ''}`, async () => {
        await pages[i].waitForFunction((s) => document.querySelector('[data-testid=swarm-status]').textContent === s,
          status, { timeout: 20000 });
        await pages[i].locator(`[data-testid=feed-item][data-kind=outcome][data-cid="${cid}"]`)
          .waitFor({ timeout: 15000 });
        const item = await pages[i].locator(`[data-testid=feed-item][data-cid="${cid}"]`).first().getAttribute('data-status');
        if (item !== outcome) throw new Error(`the feed shows ${item}, not ${outcome}`);
      });
      await check(`${cmd}: page ${i + 1} lists every worker as enabled=${enabled} (a fresh status-full)`, async () => {
        await pages[i].waitForFunction(([n, want]) => {
          const cells = document.querySelectorAll('[data-testid=worker-row] td:nth-child(5)');
          return cells.length === n && [...cells].every((td) => td.textContent === want);
        }, [W, enabled], { timeout: 20000 });
      });
      await check(`${cmd}: page ${i + 1} shows each worker's host and transport (shm)`, async () => {
        const bad = await pages[i].evaluate(() => [...document.querySelectorAll('[data-testid=worker-row]')]
          .filter((tr) => tr.children[2].textContent === '' || tr.children[3].textContent !== 'shm').length);
        if (bad) throw new Error(`${bad} worker row(s) without a host or with another transport than shm`);
      });
    }
    await shot(pages[0], `swarm-after-${cmd}`);
  }
  await shot(pages[1], 'swarm-page2');

  await check('no page error, console error or request off this machine', async () => {
    if (problems.length) throw new Error(problems.slice(0, 8).join('; '));
  });
} catch (e) {
  fail('browser session', e.message.split('\n').slice(0, 4).join(' | '));
} finally {
  if (ctx) await ctx.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(`ui_test: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
