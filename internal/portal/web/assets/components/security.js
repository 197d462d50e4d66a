// The Security tab of the create and restore wizards: the data encryption key, service-managed
// or customer-managed; for a customer-managed key, the user assigned managed identity with which
// the service reaches the key, and the key, chosen with Select a key or pasted as a Key
// identifier. With geo-redundant backup, a second identity and key for the paired region.
import * as api from '../api.js';
import { h, button, textInput, radioGroup, checkbox, uid } from '../ui.js';
import { pickIdentityPanel } from './identitypicker.js';
import { pickKeyPanel, keyParts, normRegion } from './keypicker.js';

let locationsPromise = null;
function locations() {
  if (!locationsPromise) locationsPromise = api.listLocations().catch((e) => { locationsPromise = null; throw e; });
  return locationsPromise;
}

// pairedRegion is the paired region of loc as the subscription's locations list tells it.
export async function pairedRegion(loc) {
  const l = (await locations()).find((x) => normRegion(x.name) === normRegion(loc));
  const p = l && l.metadata && l.metadata.pairedRegion;
  return p && p.length ? p[0].name : '';
}

const keyIdPattern = /^https:\/\/[^/\s]+\/keys\/[^/\s?#]+(\/[^/\s?#]+)?\/?$/i;

// One identity + key pair: the primary one, or the geo-backup one.
function keyBlock({ geo, getLocation, automatic, onChange }) {
  const names = geo ? {
    identity: 'Geo-backup user assigned managed identity', change: 'Change geo-backup identity',
    key: 'Geo-backup key', select: 'Select a geo-backup key', identifier: 'Geo-backup key identifier',
    panel: 'Select user assigned managed identity for geo-redundant backup', keyPanel: 'Select a geo-backup key',
  } : {
    identity: 'User assigned managed identity', change: 'Change identity',
    key: 'Key', select: 'Select a key', identifier: 'Key identifier',
    panel: 'Select user assigned managed identity', keyPanel: 'Select a key',
  };
  let identity = null; // ARM object
  let picked = null; // {keyId, ...} from the key picker
  const identityField = textInput(names.identity, { placeholder: 'No identity selected' });
  identityField.control.readOnly = true;
  const changeBtn = button(names.change, () => pickIdentityPanel({
    title: names.panel,
    onAdd: ([ident]) => { identity = ident; identityField.value = ident.name; identityField.setError(''); onChange(); },
  }));
  const keyField = textInput(names.key, { placeholder: 'No key selected' });
  keyField.control.readOnly = true;
  const selectBtn = button(names.select, async () => {
    let loc = getLocation();
    if (geo) loc = await pairedRegion(loc).catch(() => '') || loc;
    pickKeyPanel({
      title: names.keyPanel, location: loc, automatic: automatic(),
      onSelect: (k) => { picked = k; keyField.value = k.keyId; keyField.setError(''); onChange(); },
    });
  });
  const identifierField = textInput(names.identifier, {
    placeholder: 'https://{vault}.vault.localhost/keys/{key}/{version}',
    hint: 'The key\'s id (kid) as the key store reports it. Without a version, the service follows the key\'s newest version.',
  });
  identifierField.control.addEventListener('input', () => { identifierField.setError(''); onChange(); });
  const selectWrap = h('div', { class: 'key-select with-action' }, keyField.el, selectBtn);
  const identifierWrap = h('div', { class: 'key-identifier' }, identifierField.el);
  const el = h('div', { class: 'key-block with-action' }, identityField.el, changeBtn);
  return {
    el, selectWrap, identifierWrap, names,
    get identity() { return identity; },
    setIdentity(ident) { identity = ident; identityField.value = ident ? ident.name : ''; },
    keyId(method) { return method === 'identifier' ? identifierField.value : (picked ? picked.keyId : ''); },
    // fitAutomatic keeps a picked key consistent with the automatic update setting.
    fitAutomatic(auto) {
      if (!picked) return;
      const parts = keyParts(picked.keyId);
      if (auto && parts && parts.version) {
        picked = Object.assign({}, picked, { keyId: `${parts.store}/keys/${parts.name}`, version: '' });
        keyField.value = picked.keyId;
      } else if (!auto && parts && !parts.version) {
        picked = null;
        keyField.value = '';
      }
    },
    clearPicked() { picked = null; keyField.value = ''; },
    validate(method, auto) {
      let ok = true;
      if (!identity) { identityField.setError(geo ? 'Select the identity with which the service reaches the geo-backup key.' : 'Select the identity with which the service reaches the key.'); ok = false; } else identityField.setError('');
      keyField.setError('');
      identifierField.setError('');
      if (method === 'identifier') {
        const v = identifierField.value;
        if (!v) { identifierField.setError(geo ? 'Enter the geo-backup key identifier.' : 'Enter the key identifier.'); ok = false; } else if (!keyIdPattern.test(v)) {
          identifierField.setError('A key identifier has the form https://{vault or managed HSM host}/keys/{name}[/{version}].'); ok = false;
        } else {
          const hasVersion = Boolean(keyParts(v).version);
          if (auto && hasVersion) { identifierField.setError('With automatic key version update, enter the key identifier without a version.'); ok = false; }
          if (!auto && !hasVersion) { identifierField.setError('Without automatic key version update, enter the identifier of a key version (…/keys/{name}/{version}).'); ok = false; }
        }
      } else if (!picked) {
        keyField.setError(geo ? 'Select a geo-backup key.' : 'Select a key.'); ok = false;
      }
      return ok;
    },
  };
}

// securitySection builds the Security tab. It returns {el, setGeo(bool), setLocation(loc),
// value(), validate(), summary()}: value() is {identity, dataEncryption} in the API's shape.
export function securitySection({ location = '', geo = false, mode = 'create' } = {}) {
  let loc = location;
  let geoOn = Boolean(geo);
  const keyType = radioGroup('Data encryption key', [
    { value: 'SystemManaged', label: 'Service-managed key' },
    { value: 'AzureKeyVault', label: 'Customer-managed key' },
  ], { value: 'SystemManaged', onchange: () => refresh() });
  const auto = checkbox('Use automatic key version update', {
    hint: 'The service follows the key\'s newest version whenever the key is rotated.',
    onchange: (v) => { primary.fitAutomatic(v); geoBlock.fitAutomatic(v); },
  });
  const method = radioGroup('Key selection method', [
    { value: 'select', label: 'Select a key' },
    { value: 'identifier', label: 'Key identifier' },
  ], { value: 'select', onchange: () => refresh() });
  const changed = () => {};
  const primary = keyBlock({ geo: false, getLocation: () => loc, automatic: () => auto.checked, onChange: changed });
  const geoBlock = keyBlock({ geo: true, getLocation: () => loc, automatic: () => auto.checked, onChange: changed });
  const geoTitleId = uid('geo');
  const geoSection = h('section', { class: 'geo-keys', 'aria-labelledby': geoTitleId },
    h('h3', { id: geoTitleId }, 'Geo-redundant backup'),
    h('p', { class: 'hint' }, 'Backups copied to the paired region are encrypted with a second key, kept in a key store of the paired region.'),
    geoBlock.el, geoBlock.selectWrap, geoBlock.identifierWrap);
  const primaryTitleId = uid('pri');
  const primarySection = h('section', { class: 'primary-keys', 'aria-labelledby': primaryTitleId },
    h('h3', { id: primaryTitleId }, 'Primary key'),
    primary.el, primary.selectWrap, primary.identifierWrap);
  const cmk = h('div', { class: 'cmk' }, auto.el, method.el, primarySection, geoSection);
  const note = h('p', { class: 'hint' }, mode === 'restore'
    ? 'The new server\'s data encryption is chosen here; it cannot be switched between service-managed and customer-managed keys later.'
    : 'You choose between a service-managed and a customer-managed key only now, at server creation: you cannot switch later.');
  const titleId = uid('sec');
  const el = h('section', { class: 'security-section', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, 'Data encryption'), note, keyType.el, cmk);

  function refresh() {
    const isCmk = keyType.value === 'AzureKeyVault';
    cmk.hidden = !isCmk;
    geoSection.hidden = !geoOn;
    const sel = method.value !== 'identifier';
    primary.selectWrap.hidden = !sel;
    primary.identifierWrap.hidden = sel;
    geoBlock.selectWrap.hidden = !sel;
    geoBlock.identifierWrap.hidden = sel;
  }
  refresh();

  return {
    el,
    setGeo(v) { geoOn = Boolean(v); refresh(); },
    setLocation(l) {
      if (normRegion(l) !== normRegion(loc)) { primary.clearPicked(); geoBlock.clearPicked(); }
      loc = l;
    },
    get isCustomerManaged() { return keyType.value === 'AzureKeyVault'; },
    // validate shows what is missing inline and says whether the settings can be sent.
    validate() {
      if (keyType.value !== 'AzureKeyVault') return true;
      const m = method.value;
      let ok = primary.validate(m, auto.checked);
      if (geoOn) ok = geoBlock.validate(m, auto.checked) && ok;
      return ok;
    },
    value() {
      if (keyType.value !== 'AzureKeyVault') return { identity: null, dataEncryption: { type: 'SystemManaged' } };
      const m = method.value;
      const ids = {};
      const de = { type: 'AzureKeyVault' };
      if (primary.identity) { ids[primary.identity.id] = {}; de.primaryUserAssignedIdentityId = primary.identity.id; }
      de.primaryKeyURI = primary.keyId(m);
      if (geoOn) {
        if (geoBlock.identity) { ids[geoBlock.identity.id] = {}; de.geoBackupUserAssignedIdentityId = geoBlock.identity.id; }
        de.geoBackupKeyURI = geoBlock.keyId(m);
      }
      return { identity: { type: 'UserAssigned', userAssignedIdentities: ids }, dataEncryption: de };
    },
    // summary is [label, value] rows for a review page.
    summary() {
      if (keyType.value !== 'AzureKeyVault') return [['Data encryption key', 'Service-managed key']];
      const v = this.value().dataEncryption;
      const rows = [['Data encryption key', 'Customer-managed key'],
        ['Use automatic key version update', auto.checked ? 'Yes' : 'No'],
        ['User assigned managed identity', primary.identity ? primary.identity.name : ''],
        ['Key', v.primaryKeyURI || '']];
      if (geoOn) {
        rows.push(['Geo-backup user assigned managed identity', geoBlock.identity ? geoBlock.identity.name : '']);
        rows.push(['Geo-backup key', v.geoBackupKeyURI || '']);
      }
      return rows;
    },
  };
}
