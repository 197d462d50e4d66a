// The portal's shell: sign-in, the header and navigation, and a hash router that renders one
// page module at a time. Each page module exports `default async function render(ctx)`, where
// ctx = {main, id, params, navigate, setTitle}, and may return a cleanup function (for timers)
// that runs when the user leaves the page.
import * as api from './api.js';
import { h, clear, button, textInput, messageArea, link, closeAllPanels } from './ui.js';

const pages = {
  home: () => import('./pages/home.js'),
  browse: () => import('./pages/browse.js'),
  createServer: () => import('./pages/create.js'),
  server: () => import('./pages/server.js'),
  identity: () => import('./pages/identities.js'),
  vault: () => import('./pages/keyvault.js'),
  hsm: () => import('./pages/hsm.js'),
};

// Resource types the portal has a page for.
const resourcePages = {
  'microsoft.dbforpostgresql/flexibleservers': 'server',
  'microsoft.managedidentity/userassignedidentities': 'identity',
  'microsoft.keyvault/vaults': 'vault',
  'microsoft.keyvault/managedhsms': 'hsm',
};

const root = document.getElementById('app');
let cleanup = null;
let heartbeatTimer = null;

function navigate(route) {
  if (location.hash === '#' + route) render();
  else location.hash = route;
}

// resourceRoute is the portal route of a resource's page (and blade).
export function resourceRoute(id, blade) { return '/resource' + id + (blade ? '?blade=' + encodeURIComponent(blade) : ''); }

function parseRoute() {
  let raw;
  try {
    raw = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  } catch (e) {
    return { page: null, params: new URLSearchParams() }; // a malformed address: Not found
  }
  const [path, query] = raw.split('?');
  const params = new URLSearchParams(query || '');
  if (path.startsWith('/resource/')) {
    const id = path.slice('/resource'.length);
    const type = api.parseId(id).type || '';
    return { page: resourcePages[type.toLowerCase()], id, params };
  }
  if (path.startsWith('/browse/')) return { page: 'browse', id: path.slice('/browse/'.length), params };
  if (path === '/create/postgres') return { page: 'createServer', params };
  return { page: path === '/' ? 'home' : null, params };
}

// renderGen counts renders: a page whose render was overtaken by a newer one (the user clicked
// on before it loaded) is dropped, its cleanup run, and it adds nothing to the new page.
let renderGen = 0;

async function render() {
  if (!api.session()) return;
  const my = ++renderGen;
  const stale = () => my !== renderGen;
  if (cleanup) { try { cleanup(); } catch (e) { /* the old page is gone anyway */ } cleanup = null; }
  closeAllPanels();
  // Each page view tells the daemon whether the user is active, and finds an ended session
  // before showing a page whose data would come from a still-cached token.
  await api.heartbeat();
  if (!api.session() || stale()) return;
  const main = document.getElementById('main');
  clear(main);
  const route = parseRoute();
  const load = pages[route.page];
  if (!load) {
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'The portal has no such page. '), link('Go home', '/'));
    return;
  }
  const setTitle = (t) => { if (!stale()) document.title = `${t} - pgflex portal`; };
  setTitle('Home');
  // The page draws into its own container, which joins the page only while it is current.
  const own = h('div', { class: 'page' });
  main.append(own);
  try {
    const mod = await load();
    if (stale()) return;
    const c = await mod.default({ main: own, id: route.id, params: route.params, navigate, setTitle });
    if (stale()) {
      if (typeof c === 'function') c();
      own.remove();
      return;
    }
    if (typeof c === 'function') cleanup = c;
  } catch (e) {
    if (e instanceof api.SessionEnded || stale()) return;
    own.append(h('div', { class: 'error-box', role: 'alert' }, `The page could not be shown: ${e.message}`));
  }
  const h1 = own.querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
}

function shell() {
  const s = api.session();
  clear(root);
  const nav = h('nav', { class: 'sidenav', 'aria-label': 'Portal' },
    h('ul', {},
      h('li', {}, link('Home', '/')),
      h('li', {}, link('Create a resource', '/create/postgres')),
      h('li', {}, link('Azure Database for PostgreSQL flexible servers', '/browse/servers')),
      h('li', {}, link('Managed Identities', '/browse/identities')),
      h('li', {}, link('Key vaults', '/browse/vaults')),
      h('li', {}, link('Managed HSMs', '/browse/hsms')),
      h('li', {}, link('Resource groups', '/browse/groups'))));
  const menuBtn = button('Menu', () => {
    const open = nav.classList.toggle('open');
    menuBtn.setAttribute('aria-expanded', String(open));
  }, { ariaLabel: 'Menu' });
  menuBtn.classList.add('menu-toggle');
  menuBtn.setAttribute('aria-expanded', 'false');
  nav.addEventListener('click', (e) => { if (e.target.closest('a')) { nav.classList.remove('open'); menuBtn.setAttribute('aria-expanded', 'false'); } });
  root.append(
    h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); document.getElementById('main').focus(); } }, 'Skip to content'),
    h('header', { class: 'top' },
      menuBtn,
      h('a', { class: 'brand', href: '#/' }, 'pgflex portal'),
      h('div', { id: 'notifications', class: 'notifications', 'aria-live': 'polite' }),
      h('span', { class: 'user' }, s.user.name || s.user.clientId),
      button('Sign out', async () => { await api.signOut(); signInPage('You signed out.'); })),
    h('div', { class: 'layout' }, nav, h('main', { id: 'main', tabindex: '-1' })));
  render();
}

function signInPage(message, isError = false) {
  if (cleanup) { try { cleanup(); } catch (e) { /* ignore */ } cleanup = null; }
  clear(root);
  const clientId = textInput('Client ID', { required: true, hint: 'The clientId of your pgflex profile.' });
  const secret = textInput('Client secret', { type: 'password', required: true, autocomplete: 'current-password', hint: 'The clientSecret of your pgflex profile. Or open the link `pgflex portal` prints.' });
  const msg = messageArea();
  if (message && isError) msg.error({ message });
  else if (message) msg.ok(message);
  const form = h('form', {
    class: 'signin', 'aria-labelledby': 'signin-title',
    onsubmit: async (e) => {
      e.preventDefault();
      msg.progress('Signing in…');
      try {
        await api.signIn(clientId.value, secret.control.value);
        started();
      } catch (err) {
        msg.error(err);
      }
    },
  },
  h('h1', { id: 'signin-title' }, 'Sign in to pgflex'),
  clientId.el, secret.el, msg.el,
  h('button', { type: 'submit', class: 'btn primary' }, 'Sign in'));
  root.append(h('main', { id: 'main', class: 'signin-page' }, form));
  clientId.control.focus();
}

function started() {
  shell();
  clearInterval(heartbeatTimer);
  heartbeatTimer = setInterval(() => api.heartbeat(), 30 * 1000);
}

async function boot() {
  for (const ev of ['keydown', 'pointerdown']) document.addEventListener(ev, () => api.noteInput(), { capture: true, passive: true });
  api.onSessionEnded((why) => { clearInterval(heartbeatTimer); signInPage(why || 'Your session ended. Sign in again.', true); });
  window.addEventListener('hashchange', () => {
    if (location.hash === '#main') return;
    render();
  });
  // A one-time link carries its code in the fragment: redeem it and drop it from the address.
  const m = location.hash.match(/^#signin=([A-Za-z0-9_-]+)$/);
  if (m) {
    history.replaceState(null, '', location.pathname + '#/');
    try {
      await api.redeemLink(m[1]);
      started();
      return;
    } catch (err) {
      signInPage(err.message, true);
      return;
    }
  }
  const s = await api.loadSession().catch(() => null);
  if (s) {
    api.setSession(s);
    started();
  } else {
    signInPage();
  }
}

boot();
