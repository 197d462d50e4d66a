// Home: what the subscription holds, one card per kind, with links to each resource.
import * as api from '../api.js';
import { h, link, statusBadge, errorBox } from '../ui.js';
import { resourceRoute } from '../app.js';

export default async function render({ main, setTitle }) {
  setTitle('Home');
  main.append(h('h1', {}, 'Home'),
    h('div', { class: 'toolbar' }, link('Create Azure Database for PostgreSQL flexible server', '/create/postgres', { class: 'btn primary' })));
  const cards = h('div', { class: 'cards' });
  main.append(cards);
  const kinds = [
    ['Azure Database for PostgreSQL flexible servers', api.listServers, 'servers', (r) => [link(r.name, resourceRoute(r.id)), ' ', statusBadge(r.properties && r.properties.state)]],
    ['Managed Identities', api.listIdentities, 'identities', (r) => link(r.name, resourceRoute(r.id))],
    ['Key vaults', api.listVaults, 'vaults', (r) => link(r.name, resourceRoute(r.id))],
    ['Managed HSMs', api.listHSMs, 'hsms', (r) => link(r.name, resourceRoute(r.id))],
  ];
  await Promise.all(kinds.map(async ([title, load, kind, item]) => {
    const card = h('section', { class: 'card', 'aria-label': title }, h('h2', {}, link(title, '/browse/' + kind)));
    cards.append(card);
    try {
      const rows = await load();
      card.append(rows.length ? h('ul', {}, rows.slice(0, 8).map((r) => h('li', {}, item(r)))) : h('p', { class: 'empty' }, 'None yet.'));
    } catch (e) {
      card.append(errorBox(e));
    }
  }));
}
