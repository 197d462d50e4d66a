// Lists of one kind of resource. Servers and resource groups are listed here; identities, key
// vaults and Managed HSMs by their own modules' browse(), which also create and delete them.
import * as api from '../api.js';
import { h, link, statusBadge, table, errorBox, button, textInput, selectInput, messageArea, openPanel, notify, confirmDialog } from '../ui.js';
import { resourceRoute } from '../app.js';

export default async function render(ctx) {
  const kind = ctx.id;
  if (kind === 'servers') return servers(ctx);
  if (kind === 'groups') return groups(ctx);
  const mods = { identities: '../pages/identities.js', vaults: '../pages/keyvault.js', hsms: '../pages/hsm.js' };
  if (mods[kind]) return (await import(mods[kind])).browse(ctx);
  ctx.main.append(h('h1', {}, 'Not found'));
  return null;
}

async function servers({ main, setTitle }) {
  setTitle('Azure Database for PostgreSQL flexible servers');
  main.append(h('h1', {}, 'Azure Database for PostgreSQL flexible servers'),
    h('div', { class: 'toolbar' }, link('Create', '/create/postgres', { class: 'btn primary' })));
  const body = h('div', {});
  main.append(body);
  try {
    const rows = await api.listServers();
    body.append(table('Servers', [
      { label: 'Name', render: (r) => link(r.name, resourceRoute(r.id)) },
      { label: 'Status', render: (r) => statusBadge(r.properties && r.properties.state) },
      { label: 'Resource group', render: (r) => api.parseId(r.id).group },
      { label: 'Location', key: 'location' },
      { label: 'Data encryption', render: (r) => ((r.properties && r.properties.dataEncryption && r.properties.dataEncryption.type) === 'AzureKeyVault' ? 'Customer-managed key' : 'Service-managed key') },
    ], rows, { empty: 'No servers yet. Select Create to make one.' }));
  } catch (e) {
    body.append(errorBox(e));
  }
}

async function groups({ main, setTitle }) {
  setTitle('Resource groups');
  main.append(h('h1', {}, 'Resource groups'));
  const msg = messageArea();
  const body = h('div', {});
  const reload = async () => {
    body.replaceChildren();
    try {
      const rows = await api.listGroups();
      body.append(table('Resource groups', [
        { label: 'Name', key: 'name' },
        { label: 'Location', key: 'location' },
        { label: 'Actions', render: (r) => button('Delete', async () => {
          if (!await confirmDialog('Delete resource group', `Delete resource group ${r.name} and everything in it?`, 'Delete')) return;
          msg.progress(`Deleting resource group ${r.name}…`);
          try { await api.begin('DELETE', api.groupPath(r.name), api.apiVersions.groups); msg.ok(`Deleted resource group ${r.name}.`); reload(); } catch (e) { msg.error(e); }
        }, { danger: true, ariaLabel: `Delete resource group ${r.name}` }) },
      ], rows, { empty: 'No resource groups yet.' }));
    } catch (e) { body.append(errorBox(e)); }
  };
  main.append(h('div', { class: 'toolbar' }, button('Create', () => createGroupPanel(reload), { primary: true })), msg.el, body);
  await reload();
}

// createGroupPanel opens the "Create a resource group" pane; done(name) runs after it is made.
export async function createGroupPanel(done) {
  const name = textInput('Resource group name', { required: true });
  const region = selectInput('Region', [], { required: true });
  const msg = messageArea();
  const p = openPanel('Create a resource group', [name.el, region.el, msg.el], [
    button('Create', async () => {
      if (!name.value) { name.setError('Enter a name for the resource group.'); return; }
      msg.progress('Creating…');
      try {
        await api.arm('PUT', api.groupPath(name.value), api.apiVersions.groups, { location: region.value });
        notify(`Created resource group ${name.value}.`, 'success');
        p.close();
        done(name.value);
      } catch (e) { msg.error(e); }
    }, { primary: true }),
    button('Cancel', () => p.close()),
  ]);
  const locs = await api.listLocations().catch(() => []);
  region.setOptions(locs.map((l) => ({ value: l.name, label: l.displayName || l.name })), 'eastus');
}
