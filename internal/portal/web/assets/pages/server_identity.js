// A server's Identity blade: its user-assigned managed identities, Add (the identity picker,
// several at once) and Remove per identity. Both PATCH the server's identity block as az's
// `flexible-server identity assign/remove` do; the API refuses to remove an identity that data
// encryption uses, and its refusal is shown as it says it.
import * as api from '../api.js';
import { h, button, clear, confirmDialog, messageArea, notify, table } from '../ui.js';

export default async function render(ctx, server) {
  const { main } = ctx;
  const msg = messageArea();
  const listEl = h('div', {});
  const add = button('Add', () => addIdentities(), { primary: true, ariaLabel: 'Add user assigned managed identity' });
  main.append(
    h('h2', {}, 'User assigned managed identities'),
    h('p', { class: 'hint' }, 'Identities the server can act as, for example to reach the key store that keeps its data encryption key.'),
    h('div', { class: 'toolbar' }, add),
    msg.el, listEl);

  function assigned(s) {
    const uai = (s.identity && s.identity.userAssignedIdentities) || {};
    return Object.entries(uai).map(([id, v]) => Object.assign({ id, name: api.parseId(id).name, group: api.parseId(id).group }, v || {}));
  }

  function usage(s, id) {
    const de = (s.properties && s.properties.dataEncryption) || {};
    const same = (x) => x && x.toLowerCase() === id.toLowerCase();
    const uses = [];
    if (same(de.primaryUserAssignedIdentityId)) uses.push('Data encryption');
    if (same(de.geoBackupUserAssignedIdentityId)) uses.push('Geo-backup data encryption');
    return uses.join(', ') || '—';
  }

  function draw(s) {
    clear(listEl).append(table('User assigned managed identities', [
      { label: 'Name', key: 'name' },
      { label: 'Resource group', key: 'group' },
      { label: 'Principal ID', key: 'principalId' },
      { label: 'Used for', render: (r) => usage(s, r.id) },
      { label: 'Actions', render: (r) => button('Remove', () => remove(r), { danger: true, ariaLabel: `Remove identity ${r.name}` }) },
    ], assigned(s).sort((a, b) => a.name.localeCompare(b.name)), { empty: 'No user assigned managed identities are assigned to this server.' }));
  }

  async function patchIdentity(identity, progressText) {
    msg.progress(progressText);
    add.disabled = true;
    try {
      await api.begin('PATCH', server.id, api.apiVersions.postgres, { identity });
      draw(await server.get());
      return true;
    } catch (e) {
      if (!(e instanceof api.SessionEnded)) msg.error(e);
      // What the server has now (an identity refusal changes nothing; show it as it is).
      try { draw(await server.get()); } catch (e2) { /* the error above says enough */ }
      return false;
    } finally {
      add.disabled = false;
    }
  }

  async function addIdentities() {
    let pickIdentityPanel;
    try {
      ({ pickIdentityPanel } = await import('../components/identitypicker.js'));
    } catch (e) {
      msg.error(e);
      return;
    }
    pickIdentityPanel({
      title: 'Add user assigned managed identity',
      multiple: true,
      exclude: assigned(server.current).map((i) => i.id),
      onAdd: async (identities) => {
        const uai = {};
        for (const i of identities) uai[i.id] = {};
        const names = identities.map((i) => i.name).join(', ');
        if (await patchIdentity({ type: 'UserAssigned', userAssignedIdentities: uai }, `Adding ${names}…`)) {
          msg.ok(`Added ${names}.`);
          notify(`Added identity ${names} to server '${server.name}'.`, 'success');
        }
      },
    });
  }

  async function remove(r) {
    if (!await confirmDialog('Remove identity', `Remove user assigned managed identity '${r.name}' from server '${server.name}'? The server can no longer act as it.`, 'Remove')) return;
    const others = assigned(server.current).filter((i) => i.id.toLowerCase() !== r.id.toLowerCase());
    // az's identity remove: null for the identity, or type None when none would remain.
    const identity = others.length ? { type: 'UserAssigned', userAssignedIdentities: { [r.id]: null } } : { type: 'None' };
    if (await patchIdentity(identity, `Removing ${r.name}…`)) {
      msg.ok(`Removed ${r.name}.`);
      notify(`Removed identity ${r.name} from server '${server.name}'.`, 'success');
    }
  }

  draw(server.current);
  return null;
}
