// A server's Networking blade: whether the server takes connections from the public network,
// and its firewall rules (Microsoft.DBforPostgreSQL/flexibleServers/firewallRules): the table,
// a form that adds or updates a rule (Add current client IP address fills it), and Delete per
// rule. Every change is one firewallRules call, followed to its end (they are asynchronous).
import * as api from '../api.js';
import { h, button, clear, confirmDialog, messageArea, notify, table, textInput } from '../ui.js';

export default async function render(ctx, server) {
  const { main } = ctx;
  const rulesPath = `${server.id}/firewallRules`;
  const msg = messageArea();
  const access = h('p', {});
  const listEl = h('div', {});
  const name = textInput('Firewall rule name', { required: true, hint: 'Letters, digits, hyphens (-) and underscores (_).' });
  const start = textInput('Start IP address', { required: true, placeholder: '0.0.0.0' });
  const end = textInput('End IP address', { required: true, placeholder: '255.255.255.255' });
  const save = button('Save firewall rule', () => saveRule(), { primary: true });
  const addClient = button('Add current client IP address', () => addClientIP());
  const form = h('form', { class: 'rule-form', 'aria-labelledby': 'fw-add-h', onsubmit: (e) => { e.preventDefault(); saveRule(); } },
    h('h3', { id: 'fw-add-h' }, 'Add a firewall rule'), name.el, start.el, end.el, h('div', { class: 'toolbar' }, save));
  main.append(
    h('h2', {}, 'Public access'), access,
    h('h2', { id: 'fw-h' }, 'Firewall rules'),
    h('p', { class: 'hint' }, 'Connections from the IP addresses in these ranges are admitted to the server; no client is admitted without a rule.'),
    h('div', { class: 'toolbar' }, addClient),
    msg.el, listEl, form);

  function showAccess(s) {
    const pna = (s.properties && s.properties.network && s.properties.network.publicNetworkAccess) || 'Enabled';
    access.textContent = pna === 'Disabled'
      ? 'Public network access: Disabled. The server takes no connections from the public network, so its firewall rules admit no one.'
      : 'Public network access: Enabled. Clients connect through the internet, admitted by the firewall rules below.';
  }

  async function load() {
    try {
      const rules = (await api.list(rulesPath, api.apiVersions.postgres)).sort((a, b) => a.name.localeCompare(b.name));
      clear(listEl).append(table('Firewall rules', [
        { label: 'Firewall rule name', key: 'name' },
        { label: 'Start IP address', render: (r) => (r.properties || {}).startIpAddress },
        { label: 'End IP address', render: (r) => (r.properties || {}).endIpAddress },
        { label: 'Actions', render: (r) => button('Delete', () => deleteRule(r), { danger: true, ariaLabel: `Delete firewall rule ${r.name}` }) },
      ], rules, { empty: 'No firewall rules: no client can connect.' }));
    } catch (e) {
      if (!(e instanceof api.SessionEnded)) msg.error(e);
    }
  }

  function addClientIP() {
    const ip = api.clientAddress();
    if (!ip) {
      msg.error({ message: 'The portal cannot tell your client IP address. Enter it as the start and end IP address.' });
      return;
    }
    const d = new Date();
    name.value = `ClientIPAddress_${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}_${d.getHours()}-${d.getMinutes()}-${d.getSeconds()}`;
    start.value = ip;
    end.value = ip;
    msg.ok(`Your client IP address is ${ip}. Select Save firewall rule to add the rule.`);
    save.focus();
  }

  function validate() {
    let ok = true;
    for (const [f, what] of [[name, 'a rule name'], [start, 'the start IP address'], [end, 'the end IP address']]) {
      f.setError(f.value ? '' : `Enter ${what}.`);
      if (!f.value) ok = false;
    }
    return ok;
  }

  async function saveRule() {
    if (!validate()) return;
    const rule = name.value;
    save.disabled = true;
    msg.progress(`Saving firewall rule '${rule}'…`);
    try {
      await api.begin('PUT', `${rulesPath}/${encodeURIComponent(rule)}`, api.apiVersions.postgres,
        { properties: { startIpAddress: start.value, endIpAddress: end.value } });
      msg.ok(`Saved firewall rule '${rule}'.`);
      notify(`Saved firewall rule '${rule}'.`, 'success');
      name.value = '';
      start.value = '';
      end.value = '';
      await load();
    } catch (e) {
      // The form keeps what was typed, for a correction.
      if (!(e instanceof api.SessionEnded)) msg.error(e);
    } finally {
      save.disabled = false;
    }
  }

  async function deleteRule(r) {
    if (!await confirmDialog('Delete firewall rule', `Delete firewall rule '${r.name}' (${r.properties.startIpAddress} - ${r.properties.endIpAddress})? Clients it admits can no longer connect.`, 'Delete')) return;
    msg.progress(`Deleting firewall rule '${r.name}'…`);
    try {
      await api.begin('DELETE', `${rulesPath}/${encodeURIComponent(r.name)}`, api.apiVersions.postgres);
      msg.ok(`Deleted firewall rule '${r.name}'.`);
      notify(`Deleted firewall rule '${r.name}'.`, 'success');
      await load();
    } catch (e) {
      if (!(e instanceof api.SessionEnded)) msg.error(e);
    }
  }

  showAccess(server.current);
  await load();
  return null;
}
