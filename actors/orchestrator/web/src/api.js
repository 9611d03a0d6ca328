// The orchestrator's REST API (actors/orchestrator/api.h), relative to the
// page so the UI works under any path the orchestrator is served from.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Every POST says its body is JSON, also without one: the orchestrator
// refuses other POSTs (415), which is what keeps pages of other sites from
// sending it commands (a browser sends this type cross-site only after a
// preflight the orchestrator never grants).
async function call(method, path, body) {
  let res;
  try {
      res = await fetch(path, {
          method,
          headers : method === 'GET' ? {} : {'Content-Type' : 'application/json'},
          body : body === undefined ? undefined : JSON.stringify(body),
          cache : 'no-store',
      });
  } catch (e) {
    throw new ApiError(0, `the orchestrator is not reachable (${e.message})`);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(res.status, `${method} ${path}: answer is not JSON (HTTP ${res.status})`);
    }
  }
  if (!res.ok) {
    const why = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
    throw new ApiError(res.status, why);
  }
  return { status: res.status, data };
}

export const api = {
  swarms: () => call('GET', 'api/swarms').then((r) => r.data),
  swarm: (id) => call('GET', `api/swarms/${encodeURIComponent(id)}`).then((r) => r.data),
  command: (id, cmd) => call('POST', `api/swarms/${encodeURIComponent(id)}/${cmd}`).then((r) => r.data),
  // 200: the outcome envelope; 202: {status: "pending"}.
  outcome: (id, cid) =>
    call('GET', `api/swarms/${encodeURIComponent(id)}/outcomes/${encodeURIComponent(cid)}`),
  refresh: () => call('POST', 'api/control-plane/refresh').then((r) => r.data),
  uiConfig: () => call('GET', 'api/ui-config').then((r) => r.data),
};
