// A server's Data encryption blade (Security → Data encryption), the seed's "existing server"
// flow: the User assigned managed identity drop-down (only identities the server has), Create
// (a new identity, made and assigned) and Select (an existing identity, assigned), Use
// automatic key version update, Key selection method (Key identifier or Select a key), and
// Save, which PATCHes identity and dataEncryption as az's `flexible-server update --identity
// --key` does. A geo-redundant server has the same controls for its geo-backup key. The key
// status and the version in use are shown; the API's refusals are shown as it words them.
import * as api from '../api.js';
import { h, button, checkbox, clear, messageArea, notify, radioGroup, selectInput, statusBadge, textInput, link } from '../ui.js';
import { resourceRoute } from '../app.js';

// The controls' names of the two keys: each must be unique on the page.
const roles = {
  primary: {
    heading: 'Primary key',
    identity: 'User assigned managed identity',
    create: ['Create', null],
    select: ['Select', null],
    automatic: 'Use automatic key version update',
    method: 'Key selection method',
    byId: 'Key identifier',
    byPicker: 'Select a key',
    keyId: 'Key identifier',
    pick: 'Select key',
    uri: 'primaryKeyURI',
    id: 'primaryUserAssignedIdentityId',
    status: 'primaryEncryptionKeyStatus',
    inUse: 'primaryKeyVersionInUse',
    what: 'key',
  },
  geo: {
    heading: 'Geo-backup key',
    identity: 'Geo-backup user assigned managed identity',
    create: ['Create', 'Create geo-backup identity'],
    select: ['Select', 'Select geo-backup identity'],
    automatic: 'Use automatic key version update for the geo-backup key',
    method: 'Geo-backup key selection method',
    byId: 'Geo-backup key identifier',
    byPicker: 'Select a geo-backup key',
    keyId: 'Geo-backup key identifier',
    pick: 'Select geo-backup key',
    uri: 'geoBackupKeyURI',
    id: 'geoBackupUserAssignedIdentityId',
    status: 'geoBackupEncryptionKeyStatus',
    inUse: 'geoBackupKeyVersionInUse',
    what: 'geo-backup key',
  },
};

const keyIdPattern = /^(https:\/\/[^/\s]+)\/keys\/([^/\s?#]+)(?:\/([^/\s?#]+))?\/?$/i;

function keyParts(kid) {
  const m = String(kid || '').match(keyIdPattern);
  return m ? { store: m[1], name: m[2], version: m[3] || '' } : null;
}

function versionless(kid) {
  const p = keyParts(kid);
  return p ? `${p.store}/keys/${p.name}` : kid;
}

const same = (a, b) => String(a || '').toLowerCase() === String(b || '').toLowerCase();

function identitiesOf(s) {
  const uai = (s.identity && s.identity.userAssignedIdentities) || {};
  return Object.keys(uai).map((id) => ({ id, name: api.parseId(id).name })).sort((a, b) => a.name.localeCompare(b.name));
}

export default async function render(ctx, server) {
  const { main } = ctx;
  const s0 = server.current;
  const de0 = (s0.properties && s0.properties.dataEncryption) || {};
  if (de0.type !== 'AzureKeyVault') {
    main.append(
      h('h2', {}, 'Data encryption key'),
      h('dl', { class: 'props' }, h('dt', {}, 'Data encryption key'), h('dd', {}, 'Service-managed key')),
      h('p', { class: 'note', role: 'note' },
        'This server encrypts its data with a service-managed key. The key type can\'t be changed on an existing server: ',
        'to use a customer-managed key, restore a backup into a new server configured with one (',
        link('Backup and restore', resourceRoute(server.id, 'backup')), ').'));
    return null;
  }

  const msg = messageArea();
  const statusEl = h('dl', { class: 'props', 'aria-label': 'Key status' });
  const geoEnabled = ((s0.properties.backup || {}).geoRedundantBackup) === 'Enabled';
  const blocks = [keyBlock('primary')];
  if (geoEnabled) blocks.push(keyBlock('geo'));
  const save = button('Save', () => saveAll(), { primary: true });
  const discard = button('Discard', () => { for (const b of blocks) b.reset(server.current); msg.clear(); });

  main.append(
    h('h2', {}, 'Data encryption key'),
    h('p', {}, 'Customer-managed key: the server\'s data encryption key is wrapped by a key in your key store, which the server reaches as a user assigned managed identity.'),
    statusEl,
    ...blocks.map((b) => b.el),
    h('div', { class: 'toolbar' }, save, discard),
    msg.el);

  function showStatus(s) {
    const de = (s.properties && s.properties.dataEncryption) || {};
    clear(statusEl);
    for (const b of blocks) {
      const r = b.role;
      const prefix = b.name === 'geo' ? 'Geo-backup key' : 'Key';
      statusEl.append(
        h('dt', {}, `${prefix} status`), h('dd', {}, statusBadge(de[r.status] || 'Unknown')),
        h('dt', {}, `${prefix} in use`), h('dd', {}, de[r.uri] || ''),
        h('dt', {}, `${prefix} version in use`), h('dd', {}, de[r.inUse] || (keyParts(de[r.uri]) || {}).version || ''));
    }
  }

  // keyBlock is one key's controls: identity, automatic update, selection method, the key.
  function keyBlock(name) {
    const r = roles[name];
    const identity = selectInput(r.identity, [], { required: true, hint: 'Only identities assigned to this server are listed.' });
    const create = button(r.create[0], () => createIdentity(), { ariaLabel: r.create[1] });
    const select = button(r.select[0], () => selectIdentity(), { ariaLabel: r.select[1] });
    // Unchecking automatic update pins the key in use to the version the server uses now.
    const automatic = checkbox(r.automatic, {
      hint: 'The server follows the key\'s newest version when the key is rotated.',
      onchange: (on) => {
        const de = (server.current.properties && server.current.properties.dataEncryption) || {};
        const p = keyParts(keyId.value);
        if (!on && p && !p.version && same(keyId.value, versionless(de[r.uri])) && de[r.inUse]) keyId.value = `${versionless(keyId.value)}/${de[r.inUse]}`;
      },
    });
    const keyId = textInput(r.keyId, { hint: 'https://{key store}/keys/{name}/{version}, or without the version for automatic key version update.' });
    const picked = h('p', { class: 'picked-key' });
    const pickErr = h('div', { class: 'field-error', role: 'alert', hidden: true });
    const pick = button(r.pick, () => pickKey());
    const byPicker = h('div', { class: 'key-picker' }, pick, picked, pickErr);
    let chosen = null; // {keyId} from the key picker
    const method = radioGroup(r.method, [{ value: 'identifier', label: r.byId }, { value: 'picker', label: r.byPicker }],
      { value: 'identifier', onchange: () => showMethod() });
    const blockMsg = messageArea();
    function showMethod() {
      keyId.el.hidden = method.value !== 'identifier';
      byPicker.hidden = method.value !== 'picker';
    }
    function setPicked(k) {
      chosen = k;
      pickErr.hidden = true;
      picked.textContent = k ? `Selected key: ${k.keyId}` : 'No key selected.';
    }
    const block = {
      name, role: r,
      el: h('section', { class: 'key-block', 'aria-label': r.heading },
        h('h3', {}, r.heading),
        identity.el, h('div', { class: 'toolbar' }, create, select), blockMsg.el,
        automatic.el, method.el, keyId.el, byPicker),
      setIdentities(s, selected) {
        identity.setOptions(identitiesOf(s).map((i) => ({ value: i.id, label: i.name })));
        const match = identitiesOf(s).find((i) => same(i.id, selected));
        identity.value = match ? match.id : '';
      },
      reset(s) {
        const de = (s.properties && s.properties.dataEncryption) || {};
        block.setIdentities(s, de[r.id]);
        identity.setError('');
        keyId.setError('');
        const uri = de[r.uri] || '';
        automatic.checked = !!uri && !(keyParts(uri) || {}).version;
        method.value = 'identifier';
        keyId.value = uri;
        setPicked(null);
        showMethod();
        blockMsg.clear();
      },
      // request validates the block and returns {identityId, keyURI}, or null (errors shown).
      request() {
        identity.setError(identity.value ? '' : `Select the ${r.what}'s user assigned managed identity.`);
        let uri = '';
        let ok = !!identity.value;
        if (method.value === 'identifier') {
          uri = keyId.value;
          let err = '';
          if (!uri) err = `Enter the ${r.what} identifier.`;
          else if (!keyParts(uri)) err = 'A key identifier looks like https://{key store}/keys/{name}/{version}.';
          else if (!automatic.checked && !keyParts(uri).version) err = `Enter the identifier of a key version, or select ${r.automatic}.`;
          keyId.setError(err);
          if (err) ok = false;
        } else {
          uri = chosen ? chosen.keyId : '';
          let err = '';
          if (!uri) err = `Select the ${r.what}: select ${r.pick}.`;
          else if (!automatic.checked && !keyParts(uri).version) err = `Select a version of the key: select ${r.pick} again.`;
          pickErr.textContent = err;
          pickErr.hidden = !err;
          if (err) ok = false;
        }
        if (!ok) return null;
        if (automatic.checked) uri = versionless(uri);
        return { identityId: identity.value, keyURI: uri };
      },
      select(id) { identity.value = id; identity.setError(''); },
    };

    async function assign(ident) {
      if (identitiesOf(server.current).some((i) => same(i.id, ident.id))) {
        block.select(identitiesOf(server.current).find((i) => same(i.id, ident.id)).id);
        return;
      }
      blockMsg.progress(`Assigning identity '${ident.name}' to server '${server.name}'…`);
      try {
        await api.begin('PATCH', server.id, api.apiVersions.postgres,
          { identity: { type: 'UserAssigned', userAssignedIdentities: { [ident.id]: {} } } });
        const s = await server.get();
        for (const b of blocks) b.setIdentities(s, b === block ? ident.id : b.currentIdentity());
        blockMsg.ok(`Assigned identity '${ident.name}' to the server and selected it. Select Save to use it for the ${r.what}.`);
        notify(`Assigned identity '${ident.name}' to server '${server.name}'.`, 'success');
      } catch (e) {
        if (!(e instanceof api.SessionEnded)) blockMsg.error(e);
      }
    }
    block.currentIdentity = () => identity.value;

    // The panes are other modules, loaded when first used.
    async function load(path) {
      try {
        return await import(path);
      } catch (e) {
        blockMsg.error(e);
        return null;
      }
    }

    // The region a key's store and identity belong in: the server's, or for the geo-backup key
    // the paired region (where geo-redundant backups are kept).
    async function region() {
      const here = server.current.location;
      if (name !== 'geo') return here;
      const m = await load('../components/security.js');
      try { return (m && await m.pairedRegion(here)) || here; } catch (e) { return here; }
    }

    async function createIdentity() {
      const m = await load('./identities.js');
      if (m) m.createIdentityPanel({ location: await region(), group: server.group, onCreated: (ident) => assign(ident) });
    }

    async function selectIdentity() {
      const m = await load('../components/identitypicker.js');
      if (m) m.pickIdentityPanel({ title: 'Select user assigned managed identity', multiple: false, onAdd: (ids) => { if (ids[0]) assign(ids[0]); } });
    }

    async function pickKey() {
      const m = await load('../components/keypicker.js');
      if (!m) return;
      m.pickKeyPanel({ location: await region(), automatic: automatic.checked, title: name === 'geo' ? 'Select a geo-backup key' : 'Select a key', onSelect: (k) => setPicked(k) });
    }

    block.reset(s0);
    return block;
  }

  async function saveAll() {
    msg.clear();
    const reqs = blocks.map((b) => b.request());
    if (reqs.some((x) => !x)) {
      msg.error({ message: 'Correct the highlighted fields, then select Save again.' });
      return;
    }
    const de = (server.current.properties && server.current.properties.dataEncryption) || {};
    const dataEncryption = { type: 'AzureKeyVault' };
    const uai = {};
    let changed = false;
    blocks.forEach((b, i) => {
      const x = reqs[i];
      if (same(x.identityId, de[b.role.id]) && x.keyURI === de[b.role.uri]) return;
      changed = true;
      dataEncryption[b.role.id] = x.identityId;
      dataEncryption[b.role.uri] = x.keyURI;
      uai[x.identityId] = {};
    });
    if (!changed) {
      msg.ok('No changes to save.');
      return;
    }
    save.disabled = true;
    discard.disabled = true;
    msg.progress('Saving data encryption settings…');
    try {
      await api.begin('PATCH', server.id, api.apiVersions.postgres,
        { identity: { type: 'UserAssigned', userAssignedIdentities: uai }, properties: { dataEncryption } },
        (st) => msg.progress(`Saving data encryption settings… (${st})`));
      const s = await server.get();
      showStatus(s);
      msg.ok('Saved data encryption settings.');
      notify(`Saved the data encryption settings of server '${server.name}'.`, 'success');
    } catch (e) {
      // The form stays as it was, for a correction and another Save.
      if (!(e instanceof api.SessionEnded)) msg.error(e);
      try { showStatus(await server.get()); } catch (e2) { /* the error above says enough */ }
    } finally {
      save.disabled = false;
      discard.disabled = false;
    }
  }

  showStatus(s0);
  return null;
}
