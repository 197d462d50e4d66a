// The "Select a key" pane: a subscription, the key store type, the key vaults (or Managed HSMs)
// of the server's region, a key from the store's data plane and, without automatic key version
// update, one of its versions.
import * as api from '../api.js';
import { h, button, selectInput, radioGroup, messageArea, openPanel } from '../ui.js';

export const normRegion = (r) => String(r || '').toLowerCase().replace(/\s+/g, '');

function storesOf(sub, type) {
  const kind = type === 'hsm' ? 'managedHSMs' : 'vaults';
  return api.list(`/subscriptions/${encodeURIComponent(sub)}/providers/Microsoft.KeyVault/${kind}`, type === 'hsm' ? api.apiVersions.hsm : api.apiVersions.keyvault);
}

function storeUri(store) {
  const p = store.properties || {};
  return (p.vaultUri || p.hsmUri || '').replace(/\/$/, '');
}

// keyName is the name of a key from its id (https://{store}/keys/{name}[/{version}]).
export function keyParts(kid) {
  const m = String(kid || '').match(/^(https:\/\/[^/]+)\/keys\/([^/?#]+)(?:\/([^/?#]+))?/i);
  return m ? { store: m[1], name: m[2], version: m[3] || '' } : null;
}

// pickKeyPanel opens the pane; onSelect({keyId, storeType, storeName, keyName, version}) gets the
// key's id: versionless when automatic, else of the chosen version.
export function pickKeyPanel({ location, automatic = false, title = 'Select a key', onSelect } = {}) {
  const mySub = api.subscriptionId();
  const sub = selectInput('Subscription', [{ value: mySub, label: mySub }], { value: mySub });
  const type = radioGroup('Key store type', [{ value: 'vault', label: 'Key vault' }, { value: 'hsm', label: 'Managed HSM' }],
    { value: 'vault', onchange: () => loadStores() });
  const store = selectInput('Key vault', [], { placeholder: 'No available items', required: true });
  const storeLabel = store.el.querySelector('label');
  const key = selectInput('Key', [], { placeholder: 'No available items', required: true });
  const version = automatic ? null : selectInput('Version', [], { placeholder: 'No available items', required: true });
  const where = h('p', { class: 'hint' }, `Only key stores in the server's region (${location}) are listed.`);
  const msg = messageArea();
  let stores = [];
  let keys = [];
  let seq = 0;

  async function loadStores() {
    const my = ++seq;
    const t = type.value;
    storeLabel.firstChild.textContent = t === 'hsm' ? 'Managed HSM' : 'Key vault';
    store.setOptions([]);
    key.setOptions([]);
    if (version) version.setOptions([]);
    msg.clear();
    try {
      const all = await storesOf(sub.value || mySub, t);
      if (my !== seq) return;
      stores = all.filter((s) => normRegion(s.location) === normRegion(location)).sort((a, b) => a.name.localeCompare(b.name));
      store.setOptions(stores.map((s) => ({ value: s.id, label: s.name })), '');
      if (stores.length) store.control.querySelector('option[value=""]').textContent = t === 'hsm' ? 'Select a Managed HSM' : 'Select a key vault';
    } catch (e) {
      if (my === seq) msg.error(e);
    }
  }

  async function loadKeys() {
    const my = ++seq;
    key.setOptions([]);
    if (version) version.setOptions([]);
    msg.clear();
    const s = stores.find((x) => x.id === store.value);
    if (!s) return;
    try {
      const listed = (await api.listKeys(storeUri(s))).map((k) => ({ kid: k.kid, name: keyParts(k.kid).name, enabled: !k.attributes || k.attributes.enabled !== false }));
      if (my !== seq) return; // another store was chosen meanwhile
      keys = listed;
      keys.sort((a, b) => a.name.localeCompare(b.name));
      key.setOptions(keys.map((k) => ({ value: k.name, label: k.enabled ? k.name : `${k.name} (disabled)` })), '');
      if (keys.length) key.control.querySelector('option[value=""]').textContent = 'Select a key';
    } catch (e) {
      if (my === seq) msg.error(e);
    }
  }

  async function loadVersions() {
    if (!version) return;
    const my = ++seq;
    version.setOptions([]);
    msg.clear();
    const s = stores.find((x) => x.id === store.value);
    if (!s || !key.value) return;
    try {
      const vs = (await api.listKeyVersions(storeUri(s), key.value)).map((v) => ({
        kid: v.kid, version: keyParts(v.kid).version, created: (v.attributes && v.attributes.created) || 0, enabled: !v.attributes || v.attributes.enabled !== false,
      }));
      if (my !== seq) return;
      vs.sort((a, b) => b.created - a.created);
      version.setOptions(vs.map((v, i) => ({ value: v.kid, label: v.version + (i === 0 ? ' (current)' : '') + (v.enabled ? '' : ' (disabled)') })), vs.length ? vs[0].kid : '');
      if (vs.length) version.control.querySelector('option[value=""]').textContent = 'Select a version';
    } catch (e) {
      if (my === seq) msg.error(e);
    }
  }

  sub.onChange(loadStores);
  store.onChange(loadKeys);
  key.onChange(loadVersions);

  const content = [sub.el, type.el, store.el, where, key.el];
  if (version) content.push(version.el);
  content.push(msg.el);
  const p = openPanel(title, content, [
    button('Select', () => {
      store.setError(''); key.setError(''); if (version) version.setError('');
      const s = stores.find((x) => x.id === store.value);
      if (!s) { store.setError(type.value === 'hsm' ? 'Select a Managed HSM.' : 'Select a key vault.'); return; }
      const k = keys.find((x) => x.name === key.value);
      if (!k) { key.setError('Select a key.'); return; }
      let keyId = `${keyParts(k.kid).store}/keys/${k.name}`;
      let ver = '';
      if (version) {
        if (!version.value) { version.setError('Select a version.'); return; }
        keyId = version.value;
        ver = keyParts(keyId).version;
      }
      p.close();
      if (onSelect) onSelect({ keyId, storeType: type.value === 'hsm' ? 'Managed HSM' : 'Key vault', storeName: s.name, keyName: k.name, version: ver });
    }, { primary: true }),
    button('Cancel', () => p.close()),
  ]);
  api.listSubscriptions().then((subs) => {
    if (subs.length) sub.setOptions(subs.map((s) => ({ value: s.subscriptionId, label: s.displayName ? `${s.displayName} (${s.subscriptionId})` : s.subscriptionId })), mySub);
  }).catch(() => {});
  loadStores();
  return p;
}
