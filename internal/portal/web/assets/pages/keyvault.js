// Key vaults: the list with Create (browse), and a vault's page: overview, keys, access
// policies (vaults with the access-policy permission model) and Access control (IAM), the role
// assignments at the vault's scope.
import * as api from '../api.js';
import { h, clear, button, textInput, selectInput, radioGroup, checkbox, messageArea, openPanel, table, notify, confirmDialog, copyable, link, errorBox, tabs } from '../ui.js';
import { resourceRoute } from '../app.js';
import { groupAndRegion, retentionField, purgeProtectionField, keysSection, principals, principalName, principalPicker, withBusy, propsList, newGUID, purgeProtectionButton } from './keystore.js';

const browseRoute = '/browse/vaults';

// Every key permission, grouped as Azure's portal groups them: [API name, label].
const permissionGroups = [
  ['Key Management Operations', [['get', 'Get'], ['list', 'List'], ['update', 'Update'], ['create', 'Create'], ['import', 'Import'],
    ['delete', 'Delete'], ['recover', 'Recover'], ['backup', 'Backup'], ['restore', 'Restore']]],
  ['Cryptographic Operations', [['decrypt', 'Decrypt'], ['encrypt', 'Encrypt'], ['unwrapKey', 'Unwrap Key'], ['wrapKey', 'Wrap Key'],
    ['verify', 'Verify'], ['sign', 'Sign']]],
  ['Privileged Key Operations', [['purge', 'Purge'], ['release', 'Release']]],
  ['Rotation Policy Operations', [['rotate', 'Rotate'], ['getrotationpolicy', 'Get Rotation Policy'], ['setrotationpolicy', 'Set Rotation Policy']]],
];
const keyPermissions = permissionGroups.flatMap(([, perms]) => perms);
const permissionLabel = new Map(keyPermissions.map(([k, l]) => [k.toLowerCase(), l]));

// Templates of the Add access policy pane.
const templates = [
  { value: '', label: 'Select a template', keys: null },
  { value: 'cmk', label: 'Customer-managed key encryption (Get, Wrap Key, Unwrap Key)', keys: ['get', 'wrapKey', 'unwrapKey'] },
  { value: 'keymgmt', label: 'Key Management', keys: ['get', 'list', 'update', 'create', 'import', 'delete', 'recover', 'backup', 'restore', 'getrotationpolicy', 'setrotationpolicy', 'rotate'] },
  { value: 'all', label: 'All key permissions', keys: keyPermissions.map(([k]) => k) },
];

export async function browse({ main, setTitle }) {
  setTitle('Key vaults');
  const msg = messageArea();
  const body = h('div', {});
  const reload = async () => {
    let rows;
    try { rows = await api.listVaults(); } catch (e) { clear(body).append(errorBox(e)); return; }
    rows.sort((a, b) => a.name.localeCompare(b.name));
    clear(body).append(table('Key vaults', [
      { label: 'Name', render: (r) => link(r.name, resourceRoute(r.id)) },
      { label: 'Resource group', render: (r) => api.parseId(r.id).group },
      { label: 'Location', key: 'location' },
      { label: 'Permission model', render: (r) => permissionModel(r) },
      { label: 'Purge protection', render: (r) => (r.properties && r.properties.enablePurgeProtection ? 'Enabled' : 'Disabled') },
      { label: 'Actions', render: (r) => {
        const del = button('Delete', () => deleteVault(del, r, msg, reload), { danger: true, ariaLabel: `Delete key vault ${r.name}` });
        return del;
      } },
    ], rows, { empty: 'No key vaults yet. Select Create to make one.' }));
  };
  main.append(h('h1', {}, 'Key vaults'),
    h('div', { class: 'toolbar' },
      button('Create', () => createVaultPanel((v) => { msg.ok(`Created key vault ${v.name}.`); reload(); }), { primary: true }),
      button('Refresh', () => reload())),
    msg.el, body);
  await reload();
}

function permissionModel(v) {
  return v.properties && v.properties.enableRbacAuthorization ? 'Azure role-based access control' : 'Vault access policy';
}

async function deleteVault(btn, v, msg, done) {
  const days = (v.properties && v.properties.softDeleteRetentionInDays) || 90;
  if (!await confirmDialog('Delete key vault', `Delete key vault ${v.name}? It stays recoverable, with its keys, for ${days} days (soft delete).`, 'Delete')) return false;
  return withBusy(btn, async () => {
    msg.progress(`Deleting key vault ${v.name}…`);
    try {
      await api.arm('DELETE', v.id, api.apiVersions.keyvault);
      notify(`Deleted key vault ${v.name}.`, 'success');
      msg.ok(`Deleted key vault ${v.name}.`);
      if (done) await done();
      return true;
    } catch (e) { msg.error(e); return false; }
  });
}

// createVaultPanel opens "Create a key vault"; done(vault) runs after it is made.
export function createVaultPanel(done, { group, location } = {}) {
  const place = groupAndRegion({ group, location });
  const name = textInput('Key vault name', { required: true, hint: '3 to 24 characters: letters, digits and dashes. The name is part of the vault\'s URI.' });
  const sku = selectInput('Pricing tier', [{ value: 'standard', label: 'Standard' }, { value: 'premium', label: 'Premium' }], { value: 'standard' });
  const retention = retentionField('Days to retain deleted vaults');
  const purge = purgeProtectionField();
  const model = radioGroup('Permission model', [
    { value: 'policy', label: 'Vault access policy' },
    { value: 'rbac', label: 'Azure role-based access control' },
  ], { value: 'policy' });
  const msg = messageArea();
  const create = button('Create', () => withBusy(create, async () => {
    const ok = place.validate();
    name.setError(name.value ? '' : 'Enter a name for the key vault.');
    const days = retention.days;
    if (!ok || !name.value || days === null) return;
    const s = api.session();
    const tenantId = api.info().tenantId;
    const rbac = model.value === 'rbac';
    // As Azure's portal does, a vault with access policies starts with one for its creator.
    const policies = rbac ? [] : [{ tenantId, objectId: s.user.objectId,
      permissions: { keys: keyPermissions.map(([k]) => k), secrets: [], certificates: [], storage: [] } }];
    const props = { tenantId, sku: { family: 'A', name: sku.value }, accessPolicies: policies,
      enableSoftDelete: true, softDeleteRetentionInDays: days, enableRbacAuthorization: rbac };
    if (purge.value === 'enable') props.enablePurgeProtection = true;
    msg.progress('Creating the key vault…');
    try {
      const v = await api.begin('PUT', api.vaultPath(place.rg.value, name.value), api.apiVersions.keyvault,
        { location: place.region.value, properties: props });
      notify(`Created key vault ${v.name}.`, 'success');
      p.close();
      if (done) done(v);
    } catch (e) { msg.error(e); }
  }), { primary: true });
  const p = openPanel('Create a key vault', [
    h('h3', {}, 'Project details'), ...place.els,
    h('h3', {}, 'Instance details'), name.el, sku.el,
    h('h3', {}, 'Recovery options'), h('p', { class: 'hint' }, 'Soft delete is on for every vault: a deleted vault and its keys can be recovered during the retention period.'),
    retention.el, purge.el,
    h('h3', {}, 'Access configuration'), model.el, msg.el,
  ], [create, button('Cancel', () => p.close())]);
  return p;
}

export default async function render({ main, id, params, setTitle, navigate }) {
  const ref = api.parseId(id);
  setTitle(ref.name);
  main.append(h('h1', {}, ref.name), h('p', { class: 'hint' }, 'Key vault'));
  const msg = messageArea();
  const body = h('div', {});
  main.append(msg.el, body);
  let vault;
  try { vault = await api.arm('GET', id, api.apiVersions.keyvault); } catch (e) { body.append(errorBox(e)); return; }
  const del = button('Delete', async () => {
    if (await deleteVault(del, vault, msg)) navigate(browseRoute);
  }, { danger: true, ariaLabel: `Delete key vault ${vault.name}` });
  body.append(h('div', { class: 'toolbar' }, del));
  const rbac = Boolean(vault.properties && vault.properties.enableRbacAuthorization);
  const list = [
    { id: 'overview', label: 'Overview', render: (c) => overview(c, vault) },
    { id: 'keys', label: 'Keys', render: (c) => keysSection(c, vault.properties.vaultUri, { forbiddenHint: rbac
      ? 'This vault authorizes by Azure role-based access control: to manage its keys, assign yourself Key Vault Crypto Officer (or Key Vault Administrator) in Access control (IAM).'
      : 'This vault authorizes by access policies: give yourself the key permissions in Access policies.' }) },
  ];
  if (!rbac) list.push({ id: 'policies', label: 'Access policies', render: (c) => accessPolicies(c, id) });
  list.push({ id: 'iam', label: 'Access control (IAM)', render: (c) => roleAssignments(c, id) });
  const t = tabs(list, { label: 'Key vault' });
  body.append(t.el);
  const blade = params.get('blade');
  t.select(list.some((x) => x.id === blade) ? blade : 'overview');
}

function overview(c, v) {
  const p = v.properties || {};
  const met = (ok) => (ok ? 'Met' : 'Not met');
  const msg = messageArea();
  let purgeAction = '';
  if (!p.enablePurgeProtection) {
    purgeAction = purgeProtectionButton(v, 'vault', msg,
      (store) => api.arm('PATCH', store.id, api.apiVersions.keyvault, { properties: { enablePurgeProtection: true } }),
      (nv) => { clear(c); overview(c, nv); });
  }
  c.append(h('h2', {}, 'Essentials'),
    propsList([
      ['Resource group', api.parseId(v.id).group],
      ['Location', v.location],
      ['Pricing tier', p.sku && p.sku.name === 'premium' ? 'Premium' : 'Standard'],
      ['Soft delete', p.enableSoftDelete === false ? 'Disabled' : 'Enabled'],
      ['Days to retain deleted vaults', String(p.softDeleteRetentionInDays)],
      ['Purge protection', p.enablePurgeProtection ? 'Enabled' : 'Disabled'],
      ['Permission model', permissionModel(v)],
    ]),
    copyable('Vault URI', p.vaultUri || ''),
    copyable('Resource id', v.id),
    h('h2', {}, 'Customer-managed key requirements'),
    h('p', { class: 'hint' }, 'What Azure Database for PostgreSQL flexible server requires of a key vault that keeps its data encryption key. The vault must also be in the server\'s region, and the server\'s identity needs Get, Wrap Key and Unwrap Key on the key (an access policy, or the Key Vault Crypto Service Encryption User role).'),
    table('Customer-managed key requirements', [
      { label: 'Requirement', key: 'what' },
      { label: 'Status', key: 'status' },
      { label: 'Action', render: (r) => r.action || '' },
    ], [
      { what: 'Soft delete enabled', status: met(p.enableSoftDelete !== false) },
      { what: 'Purge protection enabled', status: met(Boolean(p.enablePurgeProtection)), action: purgeAction },
      { what: 'Days to retain deleted vaults: 90 recommended', status: p.softDeleteRetentionInDays === 90 ? 'Met' : `${p.softDeleteRetentionInDays} days` },
    ]),
    msg.el);
}

// ---- Access policies ----

function accessPolicies(c, vaultId) {
  const msg = messageArea();
  const list = h('div', {});
  c.append(h('h2', {}, 'Access policies'),
    h('div', { class: 'toolbar' }, button('Add access policy', () => addPolicyPanel(vaultId, async (name) => { msg.ok(`Added an access policy for ${name}.`); await reload(); }), { primary: true })),
    msg.el, list);
  async function reload() {
    let vault;
    let dir;
    try { [vault, dir] = await Promise.all([api.arm('GET', vaultId, api.apiVersions.keyvault), principals()]); } catch (e) { clear(list).append(errorBox(e)); return; }
    const rows = (vault.properties && vault.properties.accessPolicies) || [];
    clear(list).append(table('Access policies', [
      { label: 'Principal', render: (r) => principalName(dir, r.objectId) },
      { label: 'Object ID', key: 'objectId' },
      { label: 'Key permissions', render: (r) => ((r.permissions && r.permissions.keys) || []).map((k) => permissionLabel.get(String(k).toLowerCase()) || k).join(', ') },
      { label: 'Actions', render: (r) => {
        const who = principalName(dir, r.objectId);
        const rm = button('Remove', async () => {
          if (!await confirmDialog('Remove access policy', `Remove the access policy of ${who}? It loses its permissions on the vault's keys.`, 'Remove')) return;
          await withBusy(rm, async () => {
            msg.progress(`Removing the access policy of ${who}…`);
            try {
              const entry = { tenantId: r.tenantId, objectId: r.objectId, permissions: {} };
              if (r.applicationId) entry.applicationId = r.applicationId;
              await api.arm('PUT', `${vaultId}/accessPolicies/remove`, api.apiVersions.keyvault, { properties: { accessPolicies: [entry] } });
              msg.ok(`Removed the access policy of ${who}.`);
              await reload();
            } catch (e) { msg.error(e); }
          });
        }, { danger: true, ariaLabel: `Remove access policy of ${who}` });
        return rm;
      } },
    ], rows, { empty: 'No access policies: no principal can use this vault\'s keys.' }));
  }
  reload();
}

function addPolicyPanel(vaultId, done) {
  const template = selectInput('Configure from a template', templates.map((t) => ({ value: t.value, label: t.label })), { value: '' });
  const boxes = [];
  const perms = h('div', {}, h('h3', {}, 'Key permissions'), permissionGroups.map(([legend, list]) => h('fieldset', { class: 'radios' },
    h('legend', {}, legend), list.map(([k, l]) => { const b = checkbox(l); boxes.push([k, b]); return b.el; }))));
  template.onChange((v) => {
    const t = templates.find((x) => x.value === v);
    if (t && t.keys) for (const [k, b] of boxes) b.checked = t.keys.includes(k);
  });
  const who = principalPicker({ selectLabel: 'Select principal' });
  const msg = messageArea();
  const add = button('Add', () => withBusy(add, async () => {
    who.clearErrors();
    const keys = boxes.filter(([, b]) => b.checked).map(([k]) => k);
    if (!who.value) { who.setError('Select a principal or enter its object ID.'); return; }
    if (!keys.length) { msg.error({ message: 'Select at least one key permission.' }); return; }
    msg.progress('Adding the access policy…');
    try {
      await api.arm('PUT', `${vaultId}/accessPolicies/add`, api.apiVersions.keyvault, { properties: { accessPolicies: [
        { tenantId: api.info().tenantId, objectId: who.value, permissions: { keys, secrets: [], certificates: [] } }] } });
      const dir = await principals();
      p.close();
      done(principalName(dir, who.value));
    } catch (e) { msg.error(e); }
  }), { primary: true });
  const p = openPanel('Add access policy', [template.el, perms, h('h3', {}, 'Principal'), who.el, msg.el], [add, button('Cancel', () => p.close())]);
}

// ---- Access control (IAM): Azure RBAC role assignments at a resource's scope ----

const authz = '/providers/Microsoft.Authorization';

async function roleDefinitions(scope) {
  const defs = await api.list(`${scope}${authz}/roleDefinitions`, api.apiVersions.roles);
  return defs.map((d) => ({ id: d.id, guid: d.name || d.id.split('/').pop(), roleName: (d.properties && d.properties.roleName) || d.name }));
}

function roleNameOf(defs, defId) {
  const guid = String(defId || '').split('/').pop().toLowerCase();
  const d = defs.find((x) => x.guid.toLowerCase() === guid);
  return d ? d.roleName : defId;
}

// roleAssignments renders a resource's Access control (IAM): its role assignments (those at
// its scope and those it inherits) with Add role assignment and Remove.
export function roleAssignments(c, scope) {
  const msg = messageArea();
  const list = h('div', {});
  c.append(h('h2', {}, 'Role assignments'),
    h('div', { class: 'toolbar' }, button('Add role assignment', () => addRoleAssignmentPanel(scope, async (role, who) => { msg.ok(`Assigned ${role} to ${who}.`); await reload(); }), { primary: true })),
    msg.el, list);
  async function reload() {
    let rows;
    let defs;
    let dir;
    try {
      [rows, defs, dir] = await Promise.all([
        api.list(`${scope}${authz}/roleAssignments?$filter=${encodeURIComponent('atScope()')}`, api.apiVersions.roles),
        roleDefinitions(scope), principals()]);
    } catch (e) { clear(list).append(errorBox(e)); return; }
    const here = (r) => (r.properties.scope || '').toLowerCase() === scope.toLowerCase();
    rows.sort((a, b) => Number(here(b)) - Number(here(a)));
    clear(list).append(table('Role assignments', [
      { label: 'Role', render: (r) => roleNameOf(defs, r.properties.roleDefinitionId) },
      { label: 'Principal', render: (r) => principalName(dir, r.properties.principalId) },
      { label: 'Object ID', render: (r) => r.properties.principalId },
      { label: 'Scope', render: (r) => (here(r) ? 'This resource' : `Inherited (${r.properties.scope})`) },
      { label: 'Actions', render: (r) => {
        if (!here(r)) return '';
        const role = roleNameOf(defs, r.properties.roleDefinitionId);
        const who = principalName(dir, r.properties.principalId);
        const rm = button('Remove', async () => {
          if (!await confirmDialog('Remove role assignment', `Remove the role ${role} from ${who} at this resource?`, 'Remove')) return;
          await withBusy(rm, async () => {
            msg.progress('Removing the role assignment…');
            try {
              await api.arm('DELETE', r.id, api.apiVersions.roles);
              msg.ok(`Removed ${role} from ${who}.`);
              await reload();
            } catch (e) { msg.error(e); }
          });
        }, { danger: true, ariaLabel: `Remove role assignment ${role} of ${who}` });
        return rm;
      } },
    ], rows, { empty: 'No role assignments at this scope.' }));
  }
  reload();
}

function addRoleAssignmentPanel(scope, done) {
  const role = selectInput('Role', [], { required: true, placeholder: 'Select a role' });
  const who = principalPicker({ selectLabel: 'Member' });
  const msg = messageArea();
  let defs = [];
  roleDefinitions(scope).then((d) => {
    defs = d;
    // Key Vault's roles first, as the portal's search for "Key Vault" shows them.
    const kv = d.filter((x) => /^Key Vault/.test(x.roleName)).sort((a, b) => a.roleName.localeCompare(b.roleName));
    const rest = d.filter((x) => !/^Key Vault/.test(x.roleName) && !/^Managed HSM/.test(x.roleName)).sort((a, b) => a.roleName.localeCompare(b.roleName));
    role.setOptions([...kv, ...rest].map((x) => ({ value: x.id, label: x.roleName })), '');
  }).catch((e) => msg.error(e));
  const assign = button('Review + assign', () => withBusy(assign, async () => {
    who.clearErrors();
    role.setError(role.value ? '' : 'Select a role.');
    if (!who.value) who.setError('Select a member or enter its object ID.');
    if (!role.value || !who.value) return;
    msg.progress('Assigning the role…');
    try {
      await api.arm('PUT', `${scope}${authz}/roleAssignments/${newGUID()}`, api.apiVersions.roles,
        { properties: { roleDefinitionId: role.value, principalId: who.value, principalType: 'ServicePrincipal' } });
      const dir = await principals();
      p.close();
      done(roleNameOf(defs, role.value), principalName(dir, who.value));
    } catch (e) { msg.error(e); }
  }), { primary: true });
  const p = openPanel('Add role assignment', [role.el, who.el, msg.el], [assign, button('Cancel', () => p.close())]);
}
