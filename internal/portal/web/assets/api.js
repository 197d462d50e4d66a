// The portal's client of pgflex's APIs: the same ARM and key-store REST calls the CLI makes,
// with bearer tokens the portal's session hands out. No private back door: every rule, message
// and audit entry is the API's.

export const apiVersions = {
  postgres: '2025-08-01',
  identity: '2023-01-31',
  keyvault: '2023-07-01',
  hsm: '2023-07-01',
  keyvaultData: '7.4',
  groups: '2021-04-01',
  subscriptions: '2022-12-01',
  roles: '2022-04-01',
  activity: '2015-04-01',
};

// ApiError is an API refusal in Azure's shape: {error: {code, message}}.
export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `The request failed with status ${status}.`);
    this.status = status;
    this.code = code || '';
    this.body = body;
  }
}

// SessionEnded is thrown when the portal's session is gone (signed out, idle, expired).
export class SessionEnded extends Error {}

const state = {
  session: null, // {user, csrfToken, idleTimeout, info}
  tokens: new Map(), // resource → {value, renewAt}
  lastInput: Date.now(),
  onSessionEnded: () => {},
};

// Tokens are renewed every few minutes, not kept for their hour: a session that ends (sign-out,
// idle expiry) stops the page's API calls soon after.
const tokenReuseMs = 4 * 60 * 1000;

export function session() { return state.session; }
export function info() { return (state.session && state.session.info) || {}; }
export function subscriptionId() { return info().subscriptionId; }

// clientAddress is this browser's address as the daemon sees it (the session says), for
// firewall rules' "Add current client IP address"; '' when unknown.
export function clientAddress() { return info().clientIp || ''; }

// The session's second secret (its CSRF token) is kept in this origin's storage, which is
// separate per scheme, host and port, unlike the cookie, which the browser also sends to other
// ports of the same host. Without it the cookie is worth nothing.
const secretKey = 'pgflex-portal-session-secret';

export function setSession(s) {
  state.session = s;
  state.tokens.clear();
  try {
    if (s && s.csrfToken) localStorage.setItem(secretKey, s.csrfToken);
    if (!s) localStorage.removeItem(secretKey);
  } catch (e) { /* storage off: the session lasts as long as the page */ }
}

export function onSessionEnded(fn) { state.onSessionEnded = fn; }

// noteInput records that the user did something, for the session's idle clock.
export function noteInput() { state.lastInput = Date.now(); }

function recentlyActive() { return Date.now() - state.lastInput < 60 * 1000; }

async function authPost(path, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (state.session) headers['X-CSRF-Token'] = state.session.csrfToken;
  const resp = await fetch('/auth/' + path, { method: 'POST', headers, body: JSON.stringify(body || {}), credentials: 'same-origin' });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = data.error || {};
    if (resp.status === 401 && state.session) {
      setSession(null);
      state.onSessionEnded(e.message);
      throw new SessionEnded(e.message || 'Your session ended.');
    }
    throw new ApiError(resp.status, e.code, e.message, data);
  }
  return data;
}

export async function loadSession() {
  let secret = null;
  try { secret = localStorage.getItem(secretKey); } catch (e) { secret = null; }
  if (!secret) return null;
  const resp = await fetch('/auth/session', { credentials: 'same-origin', headers: { 'X-CSRF-Token': secret } });
  if (!resp.ok) return null;
  const s = await resp.json();
  return s.signedIn ? Object.assign(s, { csrfToken: secret }) : null;
}

export async function signIn(clientId, clientSecret) {
  setSession(await authPost('signin', { clientId, clientSecret }));
  return state.session;
}

export async function redeemLink(code) {
  setSession(await authPost('redeem', { code }));
  return state.session;
}

export async function signOut() {
  try { await authPost('signout'); } catch (e) { /* the session is gone either way */ }
  setSession(null);
}

// heartbeat tells the daemon whether the user is active, so that an idle session expires and
// an active one does not; it notices a session that ended.
export async function heartbeat() {
  if (!state.session) return;
  try { await authPost('activity', { active: recentlyActive() }); } catch (e) { /* reported via onSessionEnded */ }
}

export async function token(resource) {
  const t = state.tokens.get(resource);
  if (t && Date.now() < t.renewAt) return t.value;
  const data = await authPost('token', { resource, active: recentlyActive() });
  state.tokens.set(resource, { value: data.accessToken, renewAt: Date.now() + tokenReuseMs });
  return data.accessToken;
}

// resourceFor picks the token for a URL, and refuses any other place: a token goes only to
// this origin (ARM) or to a key-store host over HTTPS on this daemon's port.
function resourceFor(url) {
  const u = new URL(url, location.href);
  const i = info();
  if (u.origin === location.origin) return 'arm';
  const ours = u.protocol === 'https:' && u.port === location.port;
  if (ours && i.keyVaultDnsSuffix && u.hostname.endsWith('.' + i.keyVaultDnsSuffix)) return 'keyvault';
  if (ours && i.managedHsmDnsSuffix && u.hostname.endsWith('.' + i.managedHsmDnsSuffix)) return 'managedhsm';
  throw new Error(`The portal does not send credentials to ${u.origin}.`);
}

function withVersion(url, apiVersion) {
  const u = new URL(url, location.href);
  if (apiVersion && !u.searchParams.has('api-version')) u.searchParams.set('api-version', apiVersion);
  return u.origin === location.origin ? u.pathname + u.search : u.toString();
}

// request sends one authenticated call and returns {status, headers, body}; it throws ApiError
// for a status of 400 or more, with the API's code and message.
export async function request(method, url, { body, apiVersion } = {}) {
  const target = withVersion(url, apiVersion);
  const tok = await token(resourceFor(target));
  const headers = { Authorization: 'Bearer ' + tok, Accept: 'application/json' };
  const init = { method, headers, credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(target, init);
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (resp.status >= 400) {
    const e = (data && data.error) || {};
    throw new ApiError(resp.status, e.code, e.message, data);
  }
  return { status: resp.status, headers: resp.headers, body: data };
}

// arm calls the resource manager at path with the API version of its provider.
export async function arm(method, path, apiVersion, body) {
  return (await request(method, path, { apiVersion, body })).body;
}

// list reads a collection, following nextLink.
export async function list(path, apiVersion) {
  const out = [];
  let next = withVersion(path, apiVersion);
  while (next) {
    const page = (await request('GET', next)).body || {};
    out.push(...(page.value || []));
    next = page.nextLink || null;
  }
  return out;
}

// begin starts a long-running operation and waits for it, as the CLI does: it polls
// Azure-AsyncOperation (or Location) until the operation ends, calling progress(status) on
// the way, then returns the resource (GET of resourcePath) or throws the operation's error.
export async function begin(method, path, apiVersion, body, progress = () => {}) {
  const first = await request(method, path, { apiVersion, body });
  const asyncURL = first.headers.get('Azure-AsyncOperation');
  const locationURL = first.headers.get('Location');
  if (first.status === 202 || asyncURL) {
    progress('InProgress');
    if (asyncURL) {
      for (;;) {
        await sleep(retryAfter(first.headers));
        const st = (await request('GET', asyncURL)).body || {};
        progress(st.status || 'InProgress');
        if (['Succeeded', 'Failed', 'Canceled'].includes(st.status)) {
          if (st.status !== 'Succeeded') {
            const e = st.error || {};
            throw new ApiError(200, e.code || st.status, e.message || `The operation ended ${st.status}.`, st);
          }
          break;
        }
      }
    } else if (locationURL) {
      for (;;) {
        await sleep(retryAfter(first.headers));
        const r = await request('GET', locationURL);
        if (r.status !== 202) break;
      }
    }
  }
  if (method === 'DELETE' || method === 'POST') return first.body;
  return arm('GET', path, apiVersion);
}

function retryAfter(headers) {
  const s = Number(headers.get('Retry-After'));
  // Poll quickly: a portal user watches the progress.
  return Number.isFinite(s) && s > 0 ? Math.min(s, 1) * 1000 : 500;
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Resource ids.
export function parseId(id) {
  const parts = id.split('/').filter(Boolean);
  const out = { id };
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const k = parts[i].toLowerCase();
    if (k === 'subscriptions') out.subscription = parts[i + 1];
    else if (k === 'resourcegroups') out.group = parts[i + 1];
    else if (k === 'providers') { out.provider = parts[i + 1]; i -= 1; }
  }
  out.name = parts[parts.length - 1];
  const pi = parts.findIndex((p) => p.toLowerCase() === 'providers');
  if (pi >= 0) out.type = parts.slice(pi + 1).filter((_, j) => j === 0 || j % 2 === 1).join('/');
  return out;
}

export function groupPath(group) { return `/subscriptions/${subscriptionId()}/resourceGroups/${encodeURIComponent(group)}`; }
export function serverPath(group, name) { return `${groupPath(group)}/providers/Microsoft.DBforPostgreSQL/flexibleServers/${encodeURIComponent(name)}`; }
export function identityPath(group, name) { return `${groupPath(group)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${encodeURIComponent(name)}`; }
export function vaultPath(group, name) { return `${groupPath(group)}/providers/Microsoft.KeyVault/vaults/${encodeURIComponent(name)}`; }
export function hsmPath(group, name) { return `${groupPath(group)}/providers/Microsoft.KeyVault/managedHSMs/${encodeURIComponent(name)}`; }

// The subscription's resources of one kind.
export const listServers = () => list(`/subscriptions/${subscriptionId()}/providers/Microsoft.DBforPostgreSQL/flexibleServers`, apiVersions.postgres);
export const listIdentities = () => list(`/subscriptions/${subscriptionId()}/providers/Microsoft.ManagedIdentity/userAssignedIdentities`, apiVersions.identity);
export const listVaults = () => list(`/subscriptions/${subscriptionId()}/providers/Microsoft.KeyVault/vaults`, apiVersions.keyvault);
export const listHSMs = () => list(`/subscriptions/${subscriptionId()}/providers/Microsoft.KeyVault/managedHSMs`, apiVersions.hsm);
export const listGroups = () => list(`/subscriptions/${subscriptionId()}/resourcegroups`, apiVersions.groups);
export const listSubscriptions = () => list('/subscriptions', apiVersions.subscriptions);
export const listLocations = () => list(`/subscriptions/${subscriptionId()}/locations`, apiVersions.subscriptions);

// Key-store data plane: key lists and versions of a vault or HSM, by its URI.
export async function listKeys(storeUri) {
  return list(storeUri.replace(/\/?$/, '/') + 'keys', apiVersions.keyvaultData);
}
export async function listKeyVersions(storeUri, keyName) {
  return list(storeUri.replace(/\/?$/, '/') + `keys/${encodeURIComponent(keyName)}/versions`, apiVersions.keyvaultData);
}
export async function keyData(method, storeUri, path, body) {
  return (await request(method, storeUri.replace(/\/?$/, '/') + path, { apiVersion: apiVersions.keyvaultData, body })).body;
}
