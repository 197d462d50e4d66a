// User-assigned managed identities: the list (browse), one identity's page (render), and the
// "Create User Assigned Managed Identity" pane that the server's Data encryption blade reuses.
import * as api from '../api.js';
import { h, clear, button, textInput, selectInput, messageArea, openPanel, table, notify, confirmDialog, copyable, link, errorBox } from '../ui.js';
import { resourceRoute } from '../app.js';
import { groupAndRegion, withBusy, propsList } from './keystore.js';

const browseRoute = '/browse/identities';

export async function browse({ main, setTitle }) {
  setTitle('Managed Identities');
  const msg = messageArea();
  const body = h('div', {});
  const reload = async () => {
    let rows;
    try { rows = await api.listIdentities(); } catch (e) { clear(body).append(errorBox(e)); return; }
    rows.sort((a, b) => a.name.localeCompare(b.name));
    clear(body).append(table('Managed Identities', [
      { label: 'Name', render: (r) => link(r.name, resourceRoute(r.id)) },
      { label: 'Resource group', render: (r) => api.parseId(r.id).group },
      { label: 'Location', key: 'location' },
      { label: 'Client ID', render: (r) => (r.properties && r.properties.clientId) || '' },
      { label: 'Actions', render: (r) => {
        const del = button('Delete', () => deleteIdentity(del, r, msg, reload), { danger: true, ariaLabel: `Delete identity ${r.name}` });
        return del;
      } },
    ], rows, { empty: 'No managed identities yet. Select Create to make one.' }));
  };
  main.append(h('h1', {}, 'Managed Identities'),
    h('div', { class: 'toolbar' },
      button('Create', () => createIdentityPanel({ onCreated: (i) => { msg.ok(`Created managed identity ${i.name}.`); reload(); } }), { primary: true }),
      button('Refresh', () => reload())),
    msg.el, body);
  await reload();
}

async function deleteIdentity(btn, r, msg, done) {
  if (!await confirmDialog('Delete managed identity', `Delete managed identity ${r.name}? Role assignments and access policies that name it grant nothing any more.`, 'Delete')) return;
  await withBusy(btn, async () => {
    msg.progress(`Deleting managed identity ${r.name}…`);
    try {
      await api.arm('DELETE', r.id, api.apiVersions.identity);
      msg.ok(`Deleted managed identity ${r.name}.`);
      notify(`Deleted managed identity ${r.name}.`, 'success');
      await done();
    } catch (e) { msg.error(e); }
  });
}

// createIdentityPanel opens the "Create User Assigned Managed Identity" pane. location and group
// preselect the Region and Resource group; onCreated(identity) gets the identity as ARM answers
// it (with properties.principalId and clientId) after it is made.
export function createIdentityPanel({ location, group, onCreated } = {}) {
  const sub = selectInput('Subscription', [{ value: api.subscriptionId(), label: api.subscriptionId() }], { value: api.subscriptionId() });
  const place = groupAndRegion({ group, location });
  const name = textInput('Name', { required: true });
  const msg = messageArea();
  api.listSubscriptions().then((subs) => {
    if (subs.length) sub.setOptions(subs.map((s) => ({ value: s.subscriptionId, label: s.displayName ? `${s.displayName} (${s.subscriptionId})` : s.subscriptionId })), api.subscriptionId());
  }).catch(() => {});
  const create = button('Create', () => withBusy(create, async () => {
    const ok = place.validate();
    name.setError(name.value ? '' : 'Enter a name for the identity.');
    if (!ok || !name.value) return;
    msg.progress('Creating the managed identity…');
    try {
      const path = `/subscriptions/${sub.value}/resourceGroups/${encodeURIComponent(place.rg.value)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${encodeURIComponent(name.value)}`;
      const identity = await api.arm('PUT', path, api.apiVersions.identity, { location: place.region.value });
      notify(`Created managed identity ${identity.name}.`, 'success');
      p.close();
      if (onCreated) onCreated(identity);
    } catch (e) { msg.error(e); }
  }), { primary: true });
  const p = openPanel('Create User Assigned Managed Identity', [
    h('h3', {}, 'Project details'), sub.el, ...place.els,
    h('h3', {}, 'Instance details'), name.el, msg.el,
  ], [create, button('Cancel', () => p.close())]);
  return p;
}

export default async function render({ main, id, setTitle, navigate }) {
  const ref = api.parseId(id);
  setTitle(ref.name);
  main.append(h('h1', {}, ref.name), h('p', { class: 'hint' }, 'Managed Identity'));
  const msg = messageArea();
  const body = h('div', {});
  main.append(msg.el, body);
  let identity;
  try { identity = await api.arm('GET', id, api.apiVersions.identity); } catch (e) { body.append(errorBox(e)); return; }
  const p = identity.properties || {};
  const del = button('Delete', async () => {
    if (!await confirmDialog('Delete managed identity', `Delete managed identity ${identity.name}? Role assignments and access policies that name it grant nothing any more.`, 'Delete')) return;
    await withBusy(del, async () => {
      msg.progress(`Deleting managed identity ${identity.name}…`);
      try {
        await api.arm('DELETE', id, api.apiVersions.identity);
        notify(`Deleted managed identity ${identity.name}.`, 'success');
        navigate(browseRoute);
      } catch (e) { msg.error(e); }
    });
  }, { danger: true, ariaLabel: `Delete identity ${identity.name}` });
  body.append(h('div', { class: 'toolbar' }, del),
    h('h2', {}, 'Properties'),
    propsList([
      ['Client ID', p.clientId],
      ['Object (principal) ID', p.principalId],
      ['Tenant ID', p.tenantId],
      ['Location', identity.location],
      ['Resource group', ref.group],
      ['Subscription', ref.subscription],
    ]),
    copyable('Resource id', identity.id));
}
