// What key vaults and Managed HSMs share in the portal: their keys (list, create, versions,
// rotate, enable and disable, through the key store's own REST API), the choice of a principal
// (a managed identity of the subscription, or an object ID) for access policies and role
// assignments, and the resource-group and region fields of their Create panes.
import * as api from '../api.js';
import { h, clear, button, textInput, selectInput, radioGroup, messageArea, openPanel, table, notify, copyable, formatTime, errorBox, confirmDialog } from '../ui.js';
import { createGroupPanel } from './browse.js';

// keyNameOf is the key's name in its identifier (https://store/keys/{name}[/{version}]).
export function keyNameOf(kid) { return decodeURIComponent(new URL(kid).pathname.split('/')[2] || ''); }
export function keyVersionOf(kid) { return decodeURIComponent(new URL(kid).pathname.split('/')[3] || ''); }

function yesNo(b) { return b ? 'Yes' : 'No'; }
function unixTime(s) { return s ? formatTime(Number(s) * 1000) : ''; }

// newGUID names a role assignment.
export function newGUID() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// withBusy disables a button while fn runs, so that a click shows progress and is not repeated.
export async function withBusy(btn, fn) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try { return await fn(); } finally { btn.disabled = false; btn.removeAttribute('aria-busy'); }
}

// purgeProtectionButton offers to enable a key store's purge protection, which cannot be undone
// (kind: "vault", "HSM"). update(store) makes the change and returns the store as it is then;
// shown(store) draws it again.
export function purgeProtectionButton(store, kind, msg, update, shown) {
  const btn = button('Enable purge protection', async () => {
    if (!await confirmDialog('Enable purge protection', `Enable purge protection on ${store.name}? It cannot be turned off again: a deleted ${kind} and its keys stay recoverable, and cannot be purged, for ${store.properties.softDeleteRetentionInDays} days.`, 'Enable')) return;
    await withBusy(btn, async () => {
      msg.progress('Enabling purge protection…');
      try {
        shown(await update(store));
        notify(`Purge protection is enabled on ${store.name}.`, 'success');
      } catch (e) { msg.error(e); }
    });
  }, { ariaLabel: 'Enable purge protection' });
  return btn;
}

// principals is the directory the portal knows: the signed-in user and the subscription's
// managed identities, by object id (lower case) → display name.
export async function principals() {
  const out = new Map();
  const s = api.session();
  if (s && s.user && s.user.objectId) out.set(s.user.objectId.toLowerCase(), `${s.user.name || s.user.clientId} (you)`);
  try {
    for (const i of await api.listIdentities()) {
      const p = i.properties || {};
      if (p.principalId) out.set(p.principalId.toLowerCase(), i.name);
    }
  } catch (e) { /* names are a convenience: object ids are shown without them */ }
  return out;
}

export function principalName(dir, oid) {
  const n = dir.get(String(oid || '').toLowerCase());
  return n ? `${n}` : String(oid || '');
}

// principalPicker: a drop-down of the subscription's managed identities and a text box for any
// other object ID. value is the chosen object id ('' when none).
export function principalPicker({ selectLabel = 'Select principal', idLabel = 'Object ID' } = {}) {
  const sel = selectInput(selectLabel, [], { placeholder: 'Select a managed identity' });
  const oid = textInput(idLabel, { hint: 'Or paste the object (principal) ID of any principal.' });
  (async () => {
    try {
      const ids = await api.listIdentities();
      sel.setOptions(ids.filter((i) => i.properties && i.properties.principalId)
        .map((i) => ({ value: i.properties.principalId, label: `${i.name} (${i.properties.principalId})` })));
    } catch (e) { sel.setError(`${e.code ? e.code + ': ' : ''}${e.message}`); }
  })();
  return {
    el: h('div', {}, sel.el, oid.el),
    get value() { return oid.value || sel.value; },
    setError(msg) { (oid.value ? oid : sel).setError(msg); },
    clearErrors() { sel.setError(''); oid.setError(''); },
  };
}

// groupAndRegion: the Resource group drop-down with Create new, and the Region drop-down
// (defaulting to the group's region), as the Create panes of Azure's portal have them.
export function groupAndRegion({ group, location } = {}) {
  const rg = selectInput('Resource group', [], { required: true, placeholder: 'Select a resource group' });
  const region = selectInput('Region', [], { required: true });
  let groups = [];
  async function loadGroups(selected) {
    try {
      groups = await api.listGroups();
      rg.setOptions(groups.map((g) => g.name), selected || '');
    } catch (e) { rg.setError(`${e.code ? e.code + ': ' : ''}${e.message}`); }
  }
  rg.onChange((v) => {
    const g = groups.find((x) => x.name === v);
    if (g && !location) region.value = g.location;
  });
  const newGroup = button('Create new', () => {
    createGroupPanel(async (name) => {
      await loadGroups(name);
      const g = groups.find((x) => x.name === name);
      if (g) region.value = g.location;
    });
  }, { ariaLabel: 'Create new resource group' });
  const ready = (async () => {
    const [locs] = await Promise.all([api.listLocations().catch(() => []), loadGroups(group)]);
    region.setOptions(locs.map((l) => ({ value: l.name, label: l.displayName || l.name })), location || 'eastus');
    const g = groups.find((x) => x.name === group);
    if (g && !location) region.value = g.location;
  })();
  return {
    els: [rg.el, h('div', { class: 'toolbar' }, newGroup), region.el],
    rg, region, ready,
    validate() {
      rg.setError(rg.value ? '' : 'Select a resource group.');
      return Boolean(rg.value);
    },
  };
}

// retentionField: "Days to retain deleted ..." with Azure's bounds, 7 to 90.
export function retentionField(label) {
  // A text box with a numeric keyboard rather than a spin button: typed, not stepped, as
  // Azure's portal has it.
  const f = textInput(label, { value: '90', required: true, hint: 'From 7 to 90 days.' });
  f.control.inputMode = 'numeric';
  return Object.defineProperty(f, 'days', {
    get() {
      const n = Number(f.value);
      if (!Number.isInteger(n) || n < 7 || n > 90) { f.setError('Enter a whole number of days from 7 to 90.'); return null; }
      f.setError('');
      return n;
    },
  });
}

// purgeProtection: the radio group of Azure's portal.
export function purgeProtectionField() {
  const g = radioGroup('Purge protection', [
    { value: 'disable', label: 'Disable purge protection' },
    { value: 'enable', label: 'Enable purge protection' },
  ], { value: 'disable' });
  g.el.append(h('p', { class: 'hint' }, 'Once enabled, purge protection cannot be turned off: a deleted store and its keys stay recoverable for the whole retention period. Azure Database for PostgreSQL requires it of a store that keeps a customer-managed key.'));
  return g;
}

// keysSection renders a key store's keys into container: the list, Generate/Import, and for a
// selected key its versions with Rotate, Enable/Disable and the key identifier.
export function keysSection(container, storeUri, { storeLabel = 'key vault', keyTypes, forbiddenHint } = {}) {
  const msg = messageArea();
  const list = h('div', {});
  const versions = h('section', { 'aria-label': 'Key versions' });
  let selected = '';
  const toolbar = h('div', { class: 'toolbar' },
    button('Generate/Import', () => createKeyPanel(storeUri, async (name) => { await reload(); await showVersions(name); }, { keyTypes }), { primary: true }),
    button('Refresh', () => reload(), { ariaLabel: 'Refresh keys' }));
  container.append(h('h2', {}, 'Keys'), toolbar, msg.el, list, versions);

  // fail shows an API error inline, with what to do about a refusal when the store says.
  function fail(where, e) {
    clear(where).append(errorBox(e));
    if (e && e.status === 403 && forbiddenHint) where.append(h('p', { class: 'hint' }, forbiddenHint));
  }

  // setEnabled enables or disables a key's current version, or the version given.
  async function setEnabled(btn, name, enabled, version = '') {
    const what = version ? `Version ${version} of key ${name}` : `Key ${name}`;
    await withBusy(btn, async () => {
      msg.progress(`${enabled ? 'Enabling' : 'Disabling'} ${what.toLowerCase()}…`);
      try {
        await api.keyData('PATCH', storeUri, `keys/${encodeURIComponent(name)}/${encodeURIComponent(version)}`, { attributes: { enabled } });
        msg.ok(`${what} is ${enabled ? 'enabled' : 'disabled'}.`);
        await reload();
        if (selected === name) await showVersions(name);
      } catch (e) { msg.error(e); }
    });
  }

  async function rotate(btn, name) {
    await withBusy(btn, async () => {
      msg.progress(`Rotating key ${name}…`);
      try {
        const k = await api.keyData('POST', storeUri, `keys/${encodeURIComponent(name)}/rotate`);
        msg.ok(`Key ${name} has a new version ${keyVersionOf(k.key.kid)}.`);
        notify(`Rotated key ${name}.`, 'success');
        await reload();
        await showVersions(name);
      } catch (e) { msg.error(e); }
    });
  }

  async function remove(btn, name) {
    if (!await confirmDialog('Delete key', `Delete key ${name} with all its versions? It stays recoverable during the ${storeLabel}'s retention period; whatever it encrypts cannot be decrypted meanwhile.`, 'Delete')) return;
    await withBusy(btn, async () => {
      msg.progress(`Deleting key ${name}…`);
      try {
        await api.keyData('DELETE', storeUri, `keys/${encodeURIComponent(name)}`);
        msg.ok(`Deleted key ${name}.`);
        if (selected === name) { selected = ''; clear(versions); }
        await reload();
      } catch (e) { msg.error(e); }
    });
  }

  async function reload() {
    let keys;
    try { keys = await api.listKeys(storeUri); } catch (e) { fail(list, e); return; }
    keys.sort((a, b) => keyNameOf(a.kid).localeCompare(keyNameOf(b.kid)));
    clear(list).append(table('Keys', [
      { label: 'Name', render: (k) => keyNameOf(k.kid) },
      { label: 'Enabled', render: (k) => yesNo(k.attributes && k.attributes.enabled) },
      { label: 'Created', render: (k) => unixTime(k.attributes && k.attributes.created) },
      { label: 'Actions', render: (k) => {
        const name = keyNameOf(k.kid);
        const enabled = k.attributes && k.attributes.enabled;
        const rot = button('Rotate', () => rotate(rot, name), { ariaLabel: `Rotate key ${name}` });
        const tog = button(enabled ? 'Disable' : 'Enable', () => setEnabled(tog, name, !enabled), { ariaLabel: `${enabled ? 'Disable' : 'Enable'} key ${name}` });
        const del = button('Delete', () => remove(del, name), { danger: true, ariaLabel: `Delete key ${name}` });
        return h('div', { class: 'toolbar' },
          button('Versions', () => showVersions(name), { ariaLabel: `Show versions of key ${name}` }), rot, tog, del);
      } },
    ], keys, { empty: `This ${storeLabel} has no keys yet. Select Generate/Import to create one.` }));
  }

  let versionsSeq = 0;
  async function showVersions(name) {
    selected = name;
    const my = ++versionsSeq;
    clear(versions).append(h('h3', {}, `Versions of key ${name}`));
    try {
      const vs = await api.listKeyVersions(storeUri, name);
      if (my !== versionsSeq) return; // another key's versions were asked for meanwhile
      vs.sort((a, b) => ((b.attributes && b.attributes.created) || 0) - ((a.attributes && a.attributes.created) || 0));
      const versionless = vs.length ? vs[0].kid.replace(/\/[^/]+$/, '') : '';
      if (versionless) versions.append(copyable('Key identifier', versionless));
      versions.append(table(`Versions of key ${name}`, [
        { label: 'Version', render: (v) => keyVersionOf(v.kid) },
        { label: 'Enabled', render: (v) => yesNo(v.attributes && v.attributes.enabled) },
        { label: 'Created', render: (v) => unixTime(v.attributes && v.attributes.created) },
        { label: 'Actions', render: (v) => {
          const ver = keyVersionOf(v.kid);
          const on = v.attributes && v.attributes.enabled;
          const tog = button(on ? 'Disable' : 'Enable', () => setEnabled(tog, name, !on, ver), { ariaLabel: `${on ? 'Disable' : 'Enable'} version ${ver}` });
          return h('div', { class: 'toolbar' },
            button('Copy identifier', () => navigator.clipboard && navigator.clipboard.writeText(v.kid).catch(() => {}), { ariaLabel: `Copy key identifier of version ${ver}` }), tog);
        } },
      ], vs, { empty: 'No versions.' }));
    } catch (e) { const box = h('div', {}); versions.append(box); fail(box, e); }
  }

  reload();
  return { reload };
}

// createKeyPanel opens "Create a key"; done(name) runs after the key is made. keyTypes are the
// RSA and EC types the store offers: ['RSA', 'EC'] for a vault, ['RSA-HSM', 'EC-HSM'] for an HSM.
export function createKeyPanel(storeUri, done, { keyTypes = ['RSA', 'EC'] } = {}) {
  const name = textInput('Name', { required: true, hint: 'Letters, digits and dashes.' });
  const [rsa, ec] = keyTypes;
  let kty = rsa;
  const size = selectInput('RSA key size', ['2048', '3072', '4096'], { value: '2048' });
  const curve = selectInput('Elliptic curve name', ['P-256', 'P-384', 'P-521'], { value: 'P-256' });
  curve.el.hidden = true;
  const type = radioGroup('Key type', [{ value: rsa, label: rsa }, { value: ec, label: ec }], {
    value: rsa,
    onchange: (v) => { kty = v; size.el.hidden = v !== rsa; curve.el.hidden = v !== ec; },
  });
  const enabled = radioGroup('Enabled', [{ value: 'yes', label: 'Yes' }, { value: 'no', label: 'No' }], { value: 'yes' });
  const msg = messageArea();
  const create = button('Create', () => withBusy(create, async () => {
    if (!name.value) { name.setError('Enter a name for the key.'); return; }
    name.setError('');
    const body = { kty, attributes: { enabled: enabled.value === 'yes' } };
    if (kty === rsa) body.key_size = Number(size.value); else body.crv = curve.value;
    msg.progress('Creating the key…');
    try {
      await api.keyData('POST', storeUri, `keys/${encodeURIComponent(name.value)}/create`, body);
      notify(`Created key ${name.value}.`, 'success');
      p.close();
      done(name.value);
    } catch (e) { msg.error(e); }
  }), { primary: true });
  const p = openPanel('Create a key', [name.el, type.el, size.el, curve.el, enabled.el, msg.el], [create, button('Cancel', () => p.close())]);
  return p;
}

// propsList renders [label, value] pairs as a description list.
export function propsList(pairs) {
  return h('dl', { class: 'props' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? '—' : v)]));
}
