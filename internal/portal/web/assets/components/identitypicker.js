// The "Select user assigned managed identity" pane that Change identity (create, restore) and
// Select (a server's Identity and Data encryption blades) open: a subscription, a filter, the
// subscription's user-assigned managed identities, and Add.
import * as api from '../api.js';
import { h, button, textInput, selectInput, messageArea, openPanel, clear, uid } from '../ui.js';

function identitiesOf(sub) {
  return api.list(`/subscriptions/${encodeURIComponent(sub)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities`, api.apiVersions.identity);
}

// pickIdentityPanel opens the pane; onAdd(identities) gets the chosen identities' ARM objects
// ({id, name, location, properties: {principalId, clientId}}) when the user selects Add.
export function pickIdentityPanel({ title = 'Select user assigned managed identity', multiple = false, exclude = [], onAdd } = {}) {
  const excluded = new Set(exclude.map((x) => String(x).toLowerCase()));
  const mySub = api.subscriptionId();
  const sub = selectInput('Subscription', [{ value: mySub, label: mySub }], { value: mySub });
  const filter = textInput('Filter by identity name', { placeholder: 'Filter by identity name' });
  const listName = uid('idl');
  const legend = multiple ? 'User assigned managed identities' : 'User assigned managed identity';
  const listEl = h('fieldset', { class: multiple ? 'checks identity-list' : 'radios identity-list' }, h('legend', {}, legend));
  const items = h('div', {});
  listEl.append(items);
  const msg = messageArea();
  let all = [];
  const chosen = new Map(); // lower-case id → identity

  function draw() {
    clear(items);
    const f = filter.value.toLowerCase();
    const shown = all.filter((i) => !excluded.has(i.id.toLowerCase()) && (!f || i.name.toLowerCase().includes(f)));
    if (!shown.length) {
      items.append(h('p', { class: 'empty' }, all.length ? 'No identities match the filter.' : 'No user assigned managed identities in this subscription.'));
      return;
    }
    for (const ident of shown) {
      const id = uid('ido');
      const key = ident.id.toLowerCase();
      const input = h('input', { type: multiple ? 'checkbox' : 'radio', name: listName, id, value: ident.id, checked: chosen.has(key) });
      input.addEventListener('change', () => {
        if (!multiple) chosen.clear();
        if (input.checked) chosen.set(key, ident); else chosen.delete(key);
        msg.clear();
      });
      const group = api.parseId(ident.id).group;
      items.append(h('div', { class: multiple ? 'checkbox' : 'radio' }, input,
        h('label', { for: id }, ident.name),
        h('span', { class: 'hint' }, ` ${ident.location || ''} · ${group || ''}`)));
    }
  }

  let loadSeq = 0;
  async function load() {
    const my = ++loadSeq;
    clear(items).append(h('p', { class: 'loading', role: 'status' }, 'Loading identities…'));
    try {
      const listed = (await identitiesOf(sub.value || mySub)).sort((a, b) => a.name.localeCompare(b.name));
      if (my !== loadSeq) return; // another subscription was chosen meanwhile
      all = listed;
      draw();
    } catch (e) {
      if (my !== loadSeq) return;
      clear(items);
      msg.error(e);
    }
  }

  filter.control.addEventListener('input', draw);
  sub.onChange(() => { chosen.clear(); load(); });

  const p = openPanel(title, [sub.el, filter.el, listEl, msg.el], [
    button('Add', () => {
      if (!chosen.size) {
        msg.error({ message: multiple ? 'Select at least one identity.' : 'Select an identity.' });
        return;
      }
      const picked = [...chosen.values()];
      p.close();
      if (onAdd) onAdd(picked);
    }, { primary: true }),
    button('Cancel', () => p.close()),
  ]);
  api.listSubscriptions().then((subs) => {
    if (subs.length) sub.setOptions(subs.map((s) => ({ value: s.subscriptionId, label: s.displayName ? `${s.displayName} (${s.subscriptionId})` : s.subscriptionId })), mySub);
  }).catch(() => {});
  load();
  return p;
}
