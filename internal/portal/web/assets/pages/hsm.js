// Managed HSMs: the list with Create (a long-running operation), and an HSM's page: overview,
// keys, and its local RBAC — role assignments kept by the HSM itself, on its own host.
import * as api from '../api.js';
import { h, clear, button, textInput, selectInput, messageArea, openPanel, table, notify, confirmDialog, copyable, link, errorBox, tabs } from '../ui.js';
import { resourceRoute } from '../app.js';
import { groupAndRegion, retentionField, purgeProtectionField, keysSection, principals, principalName, principalPicker, withBusy, propsList, newGUID, keyNameOf, purgeProtectionButton } from './keystore.js';
import { roleAssignments as armRoleAssignments } from './keyvault.js';

const browseRoute = '/browse/hsms';
const guidRE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function browse({ main, setTitle }) {
  setTitle('Managed HSMs');
  const msg = messageArea();
  const body = h('div', {});
  const reload = async () => {
    let rows;
    try { rows = await api.listHSMs(); } catch (e) { clear(body).append(errorBox(e)); return; }
    rows.sort((a, b) => a.name.localeCompare(b.name));
    clear(body).append(table('Managed HSMs', [
      { label: 'Name', render: (r) => link(r.name, resourceRoute(r.id)) },
      { label: 'Resource group', render: (r) => api.parseId(r.id).group },
      { label: 'Location', key: 'location' },
      { label: 'Status', render: (r) => (r.properties && r.properties.provisioningState) || '' },
      { label: 'Purge protection', render: (r) => (r.properties && r.properties.enablePurgeProtection ? 'Enabled' : 'Disabled') },
      { label: 'Actions', render: (r) => {
        const del = button('Delete', () => deleteHSM(del, r, msg, reload), { danger: true, ariaLabel: `Delete managed HSM ${r.name}` });
        return del;
      } },
    ], rows, { empty: 'No Managed HSMs yet. Select Create to make one.' }));
  };
  main.append(h('h1', {}, 'Managed HSMs'),
    h('div', { class: 'toolbar' },
      button('Create', () => createHSMPanel((v) => { msg.ok(`Created managed HSM ${v.name}.`); reload(); }), { primary: true }),
      button('Refresh', () => reload())),
    msg.el, body);
  await reload();
}

async function deleteHSM(btn, v, msg, done) {
  const days = (v.properties && v.properties.softDeleteRetentionInDays) || 90;
  if (!await confirmDialog('Delete managed HSM', `Delete managed HSM ${v.name}? It stays recoverable, with its keys, for ${days} days (soft delete).`, 'Delete')) return false;
  return withBusy(btn, async () => {
    msg.progress(`Deleting managed HSM ${v.name}…`);
    try {
      await api.begin('DELETE', v.id, api.apiVersions.hsm, undefined, (s) => msg.progress(`Deleting managed HSM ${v.name}: ${s}…`));
      notify(`Deleted managed HSM ${v.name}.`, 'success');
      msg.ok(`Deleted managed HSM ${v.name}.`);
      if (done) await done();
      return true;
    } catch (e) { msg.error(e); return false; }
  });
}

// createHSMPanel opens "Create a managed HSM"; done(hsm) runs after the deployment succeeded.
export function createHSMPanel(done, { group, location } = {}) {
  const place = groupAndRegion({ group, location });
  const name = textInput('Managed HSM name', { required: true, hint: '3 to 24 characters: letters, digits and dashes.' });
  const s = api.session();
  const admins = textInput('Administrator object IDs', { required: true, value: (s && s.user && s.user.objectId) || '',
    hint: 'Object IDs of the initial administrators, separated by spaces. You are one by default.' });
  const retention = retentionField('Days to retain deleted managed HSMs');
  const purge = purgeProtectionField();
  const msg = messageArea();
  const create = button('Create', () => withBusy(create, async () => {
    const ok = place.validate();
    name.setError(name.value ? '' : 'Enter a name for the managed HSM.');
    const ids = admins.value.split(/[\s,]+/).filter(Boolean);
    admins.setError(ids.length ? '' : 'Enter at least one administrator object ID.');
    const days = retention.days;
    if (!ok || !name.value || !ids.length || days === null) return;
    const props = { tenantId: api.info().tenantId, initialAdminObjectIds: ids, enableSoftDelete: true, softDeleteRetentionInDays: days };
    if (purge.value === 'enable') props.enablePurgeProtection = true;
    msg.progress('Deploying the managed HSM…');
    try {
      const v = await api.begin('PUT', api.hsmPath(place.rg.value, name.value), api.apiVersions.hsm,
        { location: place.region.value, sku: { family: 'B', name: 'Standard_B1' }, properties: props },
        (st) => msg.progress(`Deploying the managed HSM: ${st}…`));
      notify(`Created managed HSM ${v.name}.`, 'success');
      p.close();
      if (done) done(v);
    } catch (e) { msg.error(e); }
  }), { primary: true });
  const p = openPanel('Create a managed HSM', [
    h('h3', {}, 'Project details'), ...place.els,
    h('h3', {}, 'Instance details'), name.el, admins.el,
    h('h3', {}, 'Recovery options'), retention.el, purge.el, msg.el,
  ], [create, button('Cancel', () => p.close())]);
  return p;
}

export default async function render({ main, id, params, setTitle, navigate }) {
  const ref = api.parseId(id);
  setTitle(ref.name);
  main.append(h('h1', {}, ref.name), h('p', { class: 'hint' }, 'Managed HSM'));
  const msg = messageArea();
  const body = h('div', {});
  main.append(msg.el, body);
  let hsm;
  try { hsm = await api.arm('GET', id, api.apiVersions.hsm); } catch (e) { body.append(errorBox(e)); return; }
  const del = button('Delete', async () => {
    if (await deleteHSM(del, hsm, msg)) navigate(browseRoute);
  }, { danger: true, ariaLabel: `Delete managed HSM ${hsm.name}` });
  body.append(h('div', { class: 'toolbar' }, del));
  const uri = hsm.properties.hsmUri;
  const list = [
    { id: 'overview', label: 'Overview', render: (c) => overview(c, hsm) },
    { id: 'keys', label: 'Keys', render: (c) => keysSection(c, uri, { storeLabel: 'managed HSM', keyTypes: ['RSA-HSM', 'EC-HSM'] }) },
    { id: 'rbac', label: 'Local RBAC', render: (c) => localRBAC(c, uri) },
    { id: 'iam', label: 'Access control (IAM)', render: (c) => armRoleAssignments(c, id) },
  ];
  const t = tabs(list, { label: 'Managed HSM' });
  body.append(t.el);
  const blade = params.get('blade');
  t.select(list.some((x) => x.id === blade) ? blade : 'overview');
}

function overview(c, v) {
  const p = v.properties || {};
  const sd = p.securityDomainProperties || {};
  const msg = messageArea();
  let purgeAction = '';
  if (!p.enablePurgeProtection) {
    // A Managed HSM is updated by PUT: the settable properties as they are, and the change.
    purgeAction = purgeProtectionButton(v, 'HSM', msg,
      (store) => api.begin('PUT', store.id, api.apiVersions.hsm,
        { location: store.location, sku: store.sku, tags: store.tags || {}, properties: { enablePurgeProtection: true } }),
      (nv) => { clear(c); overview(c, nv); });
  }
  c.append(h('h2', {}, 'Essentials'),
    propsList([
      ['Resource group', api.parseId(v.id).group],
      ['Location', v.location],
      ['Status', p.provisioningState],
      ['Security domain', sd.activationStatus],
      ['Soft delete', 'Enabled'],
      ['Days to retain deleted managed HSMs', String(p.softDeleteRetentionInDays)],
      ['Purge protection', p.enablePurgeProtection ? 'Enabled' : 'Disabled'],
      ['Initial administrators', (p.initialAdminObjectIds || []).join(', ')],
    ]),
    copyable('HSM URI', p.hsmUri || ''),
    copyable('Resource id', v.id),
    h('h2', {}, 'Customer-managed key requirements'),
    h('p', { class: 'hint' }, 'What Azure Database for PostgreSQL flexible server requires of a Managed HSM that keeps its data encryption key. The HSM must also be in the server\'s region, and the server\'s identity needs the Managed HSM Crypto Service Encryption User role on the key (Local RBAC).'),
    table('Customer-managed key requirements', [
      { label: 'Requirement', key: 'what' },
      { label: 'Status', key: 'status' },
      { label: 'Action', render: (r) => r.action || '' },
    ], [
      { what: 'Soft delete enabled', status: 'Met' },
      { what: 'Purge protection enabled', status: p.enablePurgeProtection ? 'Met' : 'Not met', action: purgeAction },
      { what: 'Security domain activated', status: sd.activationStatus === 'Active' ? 'Met' : 'Not met' },
    ]),
    msg.el);
}

// ---- Local RBAC: the HSM's own role assignments, at "/", "/keys" or "/keys/{name}" ----

const authz = 'providers/Microsoft.Authorization';

function scopePath(scope) {
  const s = String(scope || '/').replace(/^\/+|\/+$/g, '');
  return s ? s.split('/').map(encodeURIComponent).join('/') + '/' : '';
}

async function hsmRoleDefinitions(uri) {
  const body = await api.keyData('GET', uri, `${authz}/roleDefinitions`);
  return ((body && body.value) || []).map((d) => ({ id: d.id, guid: d.name, roleName: (d.properties && d.properties.roleName) || d.name }));
}

function roleNameOf(defs, defId) {
  const guid = String(defId || '').split('/').pop().toLowerCase();
  const d = defs.find((x) => String(x.guid).toLowerCase() === guid);
  return d ? d.roleName : defId;
}

function scopeLabel(scope) {
  if (scope === '/' || !scope) return 'All keys (/)';
  if (scope.toLowerCase() === '/keys') return 'All keys (/keys)';
  return `Key ${scope.split('/').pop()} (${scope})`;
}

function localRBAC(c, uri) {
  const msg = messageArea();
  const list = h('div', {});
  c.append(h('h2', {}, 'Local RBAC role assignments'),
    h('p', { class: 'hint' }, 'A managed HSM authorizes its keys by its own role assignments. A server that encrypts with a key here needs its identity to hold Managed HSM Crypto Service Encryption User on the key (or on all keys).'),
    h('div', { class: 'toolbar' }, button('Add role assignment', () => addLocalRolePanel(uri, async (role, who) => { msg.ok(`Assigned ${role} to ${who}.`); await reload(); }), { primary: true })),
    msg.el, list);
  async function reload() {
    let rows;
    let defs;
    let dir;
    try {
      const [body, d, p] = await Promise.all([api.keyData('GET', uri, `${authz}/roleAssignments`), hsmRoleDefinitions(uri), principals()]);
      rows = (body && body.value) || [];
      defs = d;
      dir = p;
    } catch (e) { clear(list).append(errorBox(e)); return; }
    clear(list).append(table('Local RBAC role assignments', [
      { label: 'Role', render: (r) => roleNameOf(defs, r.properties.roleDefinitionId) },
      { label: 'Principal', render: (r) => principalName(dir, r.properties.principalId) },
      { label: 'Object ID', render: (r) => r.properties.principalId },
      { label: 'Scope', render: (r) => scopeLabel(r.properties.scope) },
      { label: 'Actions', render: (r) => {
        const role = roleNameOf(defs, r.properties.roleDefinitionId);
        const who = principalName(dir, r.properties.principalId);
        const rm = button('Remove', async () => {
          const self = String(r.properties.principalId).toLowerCase() === String((api.session().user || {}).objectId).toLowerCase();
          const warn = self ? ' This is your own role: you may lose access to this HSM\'s keys or its role management.' : '';
          if (!await confirmDialog('Remove role assignment', `Remove the role ${role} from ${who} at ${scopeLabel(r.properties.scope)}?${warn}`, 'Remove')) return;
          await withBusy(rm, async () => {
            msg.progress('Removing the role assignment…');
            try {
              await api.keyData('DELETE', uri, `${scopePath(r.properties.scope)}${authz}/roleAssignments/${encodeURIComponent(r.name)}`);
              msg.ok(`Removed ${role} from ${who}.`);
              await reload();
            } catch (e) { msg.error(e); }
          });
        }, { danger: true, ariaLabel: `Remove role assignment ${role} of ${who} at ${r.properties.scope}` });
        return rm;
      } },
    ], rows, { empty: 'No role assignments.' }));
  }
  reload();
}

function addLocalRolePanel(uri, done) {
  const role = selectInput('Role', [], { required: true, placeholder: 'Select a role' });
  const scope = selectInput('Scope', [{ value: '/', label: scopeLabel('/') }, { value: '/keys', label: scopeLabel('/keys') }], { value: '/' });
  const who = principalPicker({ selectLabel: 'Member' });
  const msg = messageArea();
  let defs = [];
  hsmRoleDefinitions(uri).then((d) => {
    defs = d;
    role.setOptions(d.slice().sort((a, b) => a.roleName.localeCompare(b.roleName)).map((x) => ({ value: x.id, label: x.roleName })), '');
  }).catch((e) => msg.error(e));
  api.listKeys(uri).then((keys) => {
    const names = keys.map((k) => keyNameOf(k.kid)).sort();
    scope.setOptions(['/', '/keys', ...names.map((n) => `/keys/${n}`)].map((s) => ({ value: s, label: scopeLabel(s) })), '/');
  }).catch(() => {});
  const assign = button('Review + assign', () => withBusy(assign, async () => {
    who.clearErrors();
    role.setError(role.value ? '' : 'Select a role.');
    if (!who.value) who.setError('Select a member or enter its object ID.');
    else if (!guidRE.test(who.value)) { who.setError('An object ID is a GUID.'); return; }
    if (!role.value || !who.value) return;
    msg.progress('Assigning the role…');
    try {
      await api.keyData('PUT', uri, `${scopePath(scope.value)}${authz}/roleAssignments/${newGUID()}`,
        { properties: { roleDefinitionId: role.value, principalId: who.value } });
      const dir = await principals();
      p.close();
      done(roleNameOf(defs, role.value), principalName(dir, who.value));
    } catch (e) { msg.error(e); }
  }), { primary: true });
  const p = openPanel('Add role assignment', [role.el, scope.el, who.el, msg.el], [assign, button('Cancel', () => p.close())]);
}
