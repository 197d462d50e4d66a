// A flexible server's page: the resource menu on the left (as Azure's portal groups it) and the
// selected blade on the right. Each blade is its own module exporting
// `default async function render(ctx, server)`, where server = {id, group, name, get(), reload()}
// and ctx is the page context; a blade may return a cleanup function.
import * as api from '../api.js';
import { h, link, errorBox } from '../ui.js';
import { resourceRoute } from '../app.js';

const menu = [
  { section: null, items: [['overview', 'Overview'], ['activity', 'Activity log']] },
  { section: 'Settings', items: [['networking', 'Networking'], ['identity', 'Identity'], ['backup', 'Backup and restore']] },
  { section: 'Security', items: [['dataencryption', 'Data encryption']] },
];

const blades = {
  overview: () => import('./server_overview.js'),
  activity: () => import('./server_activity.js'),
  networking: () => import('./server_networking.js'),
  identity: () => import('./server_identity.js'),
  backup: () => import('./server_backup.js'),
  dataencryption: () => import('./server_encryption.js'),
};

export default async function render(ctx) {
  const { main, id, params, setTitle } = ctx;
  const p = api.parseId(id);
  const blade = blades[params.get('blade')] ? params.get('blade') : 'overview';
  const title = menu.flatMap((s) => s.items).find(([k]) => k === blade)[1];
  setTitle(`${p.name} | ${title}`);
  let current = null;
  const server = {
    id, group: p.group, name: p.name,
    // get reads the server afresh; reload re-renders the blade.
    async get() { current = await api.arm('GET', id, api.apiVersions.postgres); return current; },
    get current() { return current; },
    reload: () => ctx.navigate(resourceRoute(id, blade)),
  };
  const nav = h('nav', { class: 'blade-menu', 'aria-label': 'Resource menu' });
  for (const s of menu) {
    if (s.section) nav.append(h('h2', {}, s.section));
    nav.append(h('ul', {}, s.items.map(([k, label]) => h('li', {}, link(label, resourceRoute(id, k), { 'aria-current': k === blade ? 'page' : false })))));
  }
  const content = h('div', { class: 'blade-content' });
  main.append(h('p', { class: 'breadcrumb' }, link('Azure Database for PostgreSQL flexible servers', '/browse/servers'), ' › ', p.name),
    h('h1', {}, `${p.name} | ${title}`),
    h('div', { class: 'blade' }, nav, content));
  try {
    await server.get();
  } catch (e) {
    content.append(errorBox(e));
    return null;
  }
  const mod = await blades[blade]();
  return mod.default(Object.assign({}, ctx, { main: content }), server);
}
