// The "Create Azure Database for PostgreSQL flexible server" wizard: Basics, Networking, Security,
// Review + create; then the deployment's progress. The server is one PUT with everything az's
// create sends (its data encryption included, decided now and for good), then a PUT per firewall
// rule, as az's --public-access does after the server exists.
import * as api from '../api.js';
import { h, button, textInput, selectInput, checkbox, tabs, messageArea, link, clear, uid, errorBox } from '../ui.js';
import { resourceRoute } from '../app.js';
import { createGroupPanel } from './browse.js';
import { securitySection } from '../components/security.js';

const title = 'Create Azure Database for PostgreSQL flexible server';
const tierLabels = { Burstable: 'Burstable', GeneralPurpose: 'General Purpose', MemoryOptimized: 'Memory Optimized' };
const ipPattern = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

const validName = (n) => /^[a-z0-9]([a-z0-9-]{1,61})[a-z0-9]$/.test(n);

function ipNumber(ip) { return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0); }

async function capabilitiesOf(loc) {
  const body = await api.arm('GET', `/subscriptions/${api.subscriptionId()}/providers/Microsoft.DBforPostgreSQL/locations/${encodeURIComponent(loc)}/capabilities`, api.apiVersions.postgres);
  const v = (body && body.value && body.value[0]) || {};
  const tiers = (v.supportedServerEditions || []).map((e) => ({
    name: e.name,
    defaultSku: e.defaultSkuName,
    skus: (e.supportedServerSkus || []).map((s) => ({ name: s.name, vCores: s.vCores, memoryMb: (s.vCores || 0) * (s.supportedMemoryPerVcoreMb || 0) })),
    storageGB: [...new Set((e.supportedStorageEditions || []).flatMap((se) => (se.supportedStorageMb || []).map((m) => Math.round(m.storageSizeMb / 1024))))].sort((a, b) => a - b),
  }));
  const versions = (v.supportedServerVersions || []).map((x) => x.name).sort((a, b) => Number(b) - Number(a));
  let geo = String(v.geoBackupSupported || '').toLowerCase() === 'enabled';
  for (const f of v.supportedFeatures || []) if (f.name === 'GeoBackup') geo = String(f.status).toLowerCase() === 'enabled';
  return { tiers, versions, geo };
}

export default async function render(ctx) {
  const { main, setTitle } = ctx;
  setTitle(title);
  const mySub = api.subscriptionId();
  const wizard = h('div', { class: 'wizard' });
  const deployment = h('section', { class: 'deployment', hidden: true, 'aria-live': 'polite' });
  main.append(h('p', { class: 'breadcrumb' }, link('Azure Database for PostgreSQL flexible servers', '/browse/servers'), ' › Create'),
    h('h1', {}, title), wizard, deployment);

  // Basics.
  const subscription = selectInput('Subscription', [{ value: mySub, label: mySub }], { value: mySub, required: true });
  const group = selectInput('Resource group', [], { placeholder: 'Select a resource group', required: true });
  const newGroupBtn = button('Create new', () => createGroupPanel(async (name) => { await loadGroups(name); group.setError(''); }), { ariaLabel: 'Create new resource group' });
  const serverName = textInput('Server name', { required: true, hint: '3 to 63 characters: lower-case letters, digits and hyphens; not starting or ending with a hyphen.' });
  const region = selectInput('Region', [], { required: true });
  const version = selectInput('PostgreSQL version', [], { required: true });
  const tier = selectInput('Compute tier', [], { required: true });
  const sku = selectInput('Compute size', [], { required: true });
  const storage = selectInput('Storage size', [], { required: true });
  const geo = checkbox('Geo-redundant backup', { hint: 'Keep copies of the backups in the paired region.', onchange: (v) => security.setGeo(v) });
  const admin = textInput('Administrator login', { required: true, autocomplete: 'off' });
  const password = textInput('Password', { type: 'password', required: true, autocomplete: 'new-password', hint: '8 to 128 characters from three of: upper-case letters, lower-case letters, digits, other characters.' });
  const confirm = textInput('Confirm password', { type: 'password', required: true, autocomplete: 'new-password' });
  let caps = { tiers: [], versions: [], geo: false };
  const capsMsg = messageArea();

  // Networking.
  const publicAccess = checkbox('Public access', { checked: true, hint: 'Allow connections over the internet, from the addresses of the firewall rules only.' });
  const rules = [];
  // A region of its own that scrolls sideways in a narrow window (and takes focus to, for the keyboard).
  const rulesBox = h('div', { class: 'rules', role: 'region', 'aria-label': 'Firewall rules list', tabindex: '0' });
  const ruleName = textInput('Firewall rule name');
  const ruleStart = textInput('Start IP address');
  const ruleEnd = textInput('End IP address');
  const rulesMsg = messageArea();

  // Security.
  const security = securitySection({ location: 'eastus', geo: false, mode: 'create' });

  // Review + create.
  const reviewBox = h('div', {});
  const createMsg = messageArea();

  function drawRules() {
    clear(rulesBox).append(rules.length ? h('table', { class: 'grid' },
      h('caption', { class: 'visually-hidden' }, 'Firewall rules'),
      h('thead', {}, h('tr', {}, ['Firewall rule name', 'Start IP address', 'End IP address', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rules.map((r) => h('tr', {}, h('td', {}, r.name), h('td', {}, r.start), h('td', {}, r.end),
        h('td', {}, button('Remove', () => { rules.splice(rules.indexOf(r), 1); drawRules(); }, { ariaLabel: `Remove firewall rule ${r.name}` })))))) :
      h('p', { class: 'empty' }, 'No firewall rules: no client can connect until you add one.'));
  }

  function addRule(name, start, end) {
    ruleName.setError(''); ruleStart.setError(''); ruleEnd.setError('');
    let ok = true;
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(name)) { ruleName.setError('Enter a name of up to 128 letters, digits, hyphens, underscores and periods.'); ok = false; } else if (rules.some((r) => r.name.toLowerCase() === name.toLowerCase())) { ruleName.setError(`There is already a firewall rule named ${name}.`); ok = false; }
    if (!ipPattern.test(start)) { ruleStart.setError('Enter an IPv4 address.'); ok = false; }
    if (!ipPattern.test(end)) { ruleEnd.setError('Enter an IPv4 address.'); ok = false; }
    if (ok && ipNumber(end) < ipNumber(start)) { ruleEnd.setError('The end IP address is smaller than the start IP address.'); ok = false; }
    if (!ok) return false;
    rules.push({ name, start, end });
    drawRules();
    return true;
  }

  async function loadGroups(selected) {
    try {
      const gs = await api.listGroups();
      group.setOptions(gs.map((g) => g.name).sort((a, b) => a.localeCompare(b)), selected !== undefined ? selected : group.value);
    } catch (e) { group.setError(`${e.code ? e.code + ': ' : ''}${e.message}`); }
  }

  function fillSkus(keep) {
    const t = caps.tiers.find((x) => x.name === tier.value);
    if (!t) { sku.setOptions([]); storage.setOptions([]); return; }
    const prevSku = keep ? sku.value : '';
    const prevStorage = keep ? storage.value : '';
    sku.setOptions(t.skus.map((s) => ({ value: s.name, label: `${s.name} (${s.vCores} vCores, ${Math.round(s.memoryMb / 1024)} GiB memory)` })));
    sku.value = t.skus.some((s) => s.name === prevSku) ? prevSku : (t.defaultSku || (t.skus[0] && t.skus[0].name) || '');
    storage.setOptions(t.storageGB.map((g) => ({ value: String(g), label: `${g} GiB` })));
    storage.value = t.storageGB.map(String).includes(prevStorage) ? prevStorage : String(t.storageGB.includes(32) ? 32 : t.storageGB[0]);
  }

  let capsSeq = 0;
  async function loadCaps() {
    capsMsg.clear();
    const my = ++capsSeq;
    try {
      const got = await capabilitiesOf(region.value);
      if (my !== capsSeq) return; // another region was chosen meanwhile
      caps = got;
      const prevV = version.value;
      version.setOptions(caps.versions.map((v) => ({ value: v, label: v })), caps.versions.includes(prevV) ? prevV : caps.versions[0]);
      const prevT = tier.value || 'Burstable';
      tier.setOptions(caps.tiers.map((t) => ({ value: t.name, label: tierLabels[t.name] || t.name })), caps.tiers.some((t) => t.name === prevT) ? prevT : (caps.tiers[0] && caps.tiers[0].name));
      fillSkus(true);
      geo.input.disabled = !caps.geo;
      if (!caps.geo && geo.checked) { geo.checked = false; security.setGeo(false); }
    } catch (e) { capsMsg.error(e); }
  }

  tier.onChange(() => fillSkus(false));
  region.onChange(() => { security.setLocation(region.value); loadCaps(); });
  for (const f of [serverName, admin, password, confirm]) f.control.addEventListener('input', () => f.setError(''));
  group.onChange(() => group.setError(''));

  // validateBasics shows what is wrong inline; true when the tab is complete.
  function validateBasics() {
    let ok = true;
    const err = (f, m) => { f.setError(m); ok = false; };
    for (const f of [group, serverName, admin, password, confirm]) f.setError('');
    if (!group.value) err(group, 'Select a resource group, or create one.');
    const n = serverName.value;
    if (!n) err(serverName, 'Enter a server name.');
    else if (!validName(n)) err(serverName, 'The server name must be 3 to 63 characters long, of lower-case letters, digits and hyphens, and must not start or end with a hyphen.');
    const a = admin.value;
    if (!a) err(admin, 'Enter an administrator login.');
    else if (!/^[A-Za-z][A-Za-z0-9_]{0,62}$/.test(a)) err(admin, 'The administrator login must start with a letter and hold only letters, digits and underscores (up to 63).');
    else if (/^(azure_superuser|azure_pg_admin|admin|administrator|root|guest|public)$/i.test(a) || /^pg_/i.test(a)) err(admin, `The administrator login '${a}' is reserved. Choose another.`);
    const p = password.control.value;
    const classes = [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(p)).length;
    if (!p) err(password, 'Enter a password.');
    else if (p.length < 8 || p.length > 128 || classes < 3) err(password, 'The password must be 8 to 128 characters long and contain characters from three of: upper-case letters, lower-case letters, digits, non-alphanumeric characters.');
    if (p && confirm.control.value !== p) err(confirm, 'The passwords do not match.');
    if (!region.value || !version.value || !sku.value || !storage.value) { ok = false; if (!capsMsg.el.firstChild) capsMsg.error({ message: 'The region\'s offer is not loaded yet.' }); }
    return ok;
  }

  // checkName asks the API whether the server name is free in the region (as az's create does);
  // false, with the API's reason shown at the field, when it is not.
  async function checkName() {
    const n = serverName.value;
    if (!n || !region.value) return true;
    try {
      const r = await api.arm('POST', `/subscriptions/${api.subscriptionId()}/providers/Microsoft.DBforPostgreSQL/locations/${encodeURIComponent(region.value)}/checkNameAvailability`,
        api.apiVersions.postgres, { name: n, type: 'Microsoft.DBforPostgreSQL/flexibleServers' });
      if (r && r.nameAvailable === false && serverName.value === n) {
        serverName.setError(r.message || `The server name ${n} is not available.`);
        return false;
      }
    } catch (e) { /* the create itself reports what the API says */ }
    return true;
  }
  serverName.control.addEventListener('change', () => { if (validName(serverName.value)) checkName(); });

  function values() {
    const sec = security.value();
    const body = {
      location: region.value,
      sku: { name: sku.value, tier: tier.value },
      properties: {
        administratorLogin: admin.value,
        administratorLoginPassword: password.control.value,
        version: version.value,
        storage: { storageSizeGB: Number(storage.value), autoGrow: 'Disabled' },
        backup: { backupRetentionDays: 7, geoRedundantBackup: geo.checked ? 'Enabled' : 'Disabled' },
        network: { publicNetworkAccess: publicAccess.checked ? 'Enabled' : 'Disabled' },
        highAvailability: { mode: 'Disabled' },
        authConfig: { activeDirectoryAuth: 'Disabled', passwordAuth: 'Enabled' },
        createMode: 'Create',
      },
    };
    if (sec.identity) body.identity = sec.identity;
    if (sec.dataEncryption.type === 'AzureKeyVault') body.properties.dataEncryption = sec.dataEncryption;
    return body;
  }

  let reviewSeq = 0;
  async function drawReview() {
    const my = ++reviewSeq;
    clear(reviewBox).append(h('p', { class: 'loading', role: 'status' }, 'Validating…'));
    createMsg.clear();
    createBtn.disabled = true;
    const bad = [];
    let basicsOk = validateBasics();
    if (basicsOk) basicsOk = await checkName();
    if (my !== reviewSeq) return;
    clear(reviewBox);
    if (!basicsOk) bad.push('Basics');
    if (!security.validate()) bad.push('Security');
    if (bad.length) {
      reviewBox.append(h('div', { class: 'error-box', role: 'alert' }, h('strong', {}, 'Validation failed. '),
        `Fix the errors on the ${bad.join(' and ')} tab${bad.length > 1 ? 's' : ''}, then return here.`));
      createBtn.disabled = true;
      return;
    }
    createBtn.disabled = false;
    const tierLabel = tierLabels[tier.value] || tier.value;
    const rows = [
      ['Subscription', subscription.control.selectedOptions[0] ? subscription.control.selectedOptions[0].textContent : subscription.value], ['Resource group', group.value], ['Server name', serverName.value],
      ['Region', region.control.selectedOptions[0] ? region.control.selectedOptions[0].textContent : region.value],
      ['PostgreSQL version', version.value], ['Compute + storage', `${tierLabel}, ${sku.value}, ${storage.value} GiB`],
      ['Geo-redundant backup', geo.checked ? 'Enabled' : 'Disabled'], ['Administrator login', admin.value],
      ['Public access', publicAccess.checked ? 'Enabled' : 'Disabled'],
      ['Firewall rules', rules.length ? rules.map((r) => `${r.name} (${r.start} – ${r.end})`).join(', ') : 'None'],
      ...security.summary(),
    ];
    reviewBox.append(h('table', { class: 'grid summary' }, h('caption', {}, 'Summary'),
      h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v))))));
  }

  const order = ['basics', 'networking', 'security', 'review'];
  let current = 'basics';
  const prevBtn = button('Previous', () => t.select(order[Math.max(0, order.indexOf(current) - 1)]));
  const nextBtn = button('Next', () => t.select(order[Math.min(order.length - 1, order.indexOf(current) + 1)]), { primary: true });
  const createBtn = button('Create', () => create(), { primary: true });
  const reviewBtn = button('Review + create', () => t.select('review'), { ariaLabel: 'Go to Review + create' });

  const t = tabs([
    { id: 'basics', label: 'Basics', render: (p) => p.append(
      h('h2', {}, 'Project details'), subscription.el,
      h('div', { class: 'with-action' }, group.el, newGroupBtn),
      h('h2', {}, 'Server details'), serverName.el, region.el, version.el,
      h('h3', {}, 'Compute + storage'), tier.el, sku.el, storage.el, capsMsg.el,
      h('h3', {}, 'Backup'), geo.el,
      h('h2', {}, 'Administrator account'), admin.el, password.el, confirm.el) },
    { id: 'networking', label: 'Networking', render: (p) => {
      const ruleForm = h('div', { class: 'rule-form' }, ruleName.el, ruleStart.el, ruleEnd.el,
        h('div', { class: 'toolbar' },
          button('Add firewall rule', () => {
            if (addRule(ruleName.value, ruleStart.value, ruleEnd.value)) { ruleName.value = ''; ruleStart.value = ''; ruleEnd.value = ''; }
          }),
          button('Add current client IP address', () => {
            rulesMsg.clear();
            const ip = api.clientAddress();
            if (!ip) { rulesMsg.error({ message: 'The portal cannot tell this browser\'s address: enter it as a rule\'s start and end IP address.' }); ruleStart.control.focus(); return; }
            const d = new Date();
            const two = (n) => String(n).padStart(2, '0');
            const stamp = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}_${two(d.getHours())}-${two(d.getMinutes())}-${two(d.getSeconds())}`;
            let name = `ClientIPAddress_${stamp}`;
            for (let i = 2; rules.some((r) => r.name === name); i += 1) name = `ClientIPAddress_${stamp}_${i}`;
            addRule(name, ip, ip);
          })));
      p.append(h('h2', {}, 'Network connectivity'), publicAccess.el,
        h('h2', {}, 'Firewall rules'),
        h('p', { class: 'hint' }, 'Connections from the IP addresses of these rules reach the server. The rules are added once the server exists.'),
        rulesBox, ruleForm, rulesMsg.el);
      drawRules();
    } },
    { id: 'security', label: 'Security', render: (p) => p.append(security.el) },
    { id: 'review', label: 'Review + create', render: (p) => p.append(reviewBox, createMsg.el) },
  ], {
    label: 'Create server steps',
    onselect: (id) => {
      current = id;
      prevBtn.disabled = id === 'basics';
      nextBtn.hidden = id === 'review';
      createBtn.hidden = id !== 'review';
      reviewBtn.hidden = id === 'review';
      if (id === 'review') drawReview();
    },
  });
  wizard.append(t.el, h('div', { class: 'wizard-foot' }, reviewBtn, prevBtn, nextBtn, createBtn));

  async function create() {
    await drawReview();
    if (createBtn.disabled) return;
    const body = values();
    const g = group.value;
    const name = serverName.value;
    const id = api.serverPath(g, name);
    const wanted = rules.slice();
    createBtn.disabled = true;
    createMsg.progress('Submitting the deployment…');
    const headingId = uid('dep');
    const head = h('h2', { id: headingId, tabindex: '-1' }, 'Deployment is in progress');
    const status = messageArea();
    clear(deployment).append(head, h('p', {}, `Deployment of server ${name} in resource group ${g}.`), status.el);
    let started = false;
    try {
      await api.begin('PUT', id, api.apiVersions.postgres, body, (st) => {
        if (!started) {
          started = true;
          wizard.hidden = true;
          deployment.hidden = false;
          head.focus();
        }
        status.progress(`Creating server ${name}… (${st})`);
      });
    } catch (e) {
      // Refused or failed: back to the form as it was, with the API's reason.
      wizard.hidden = false;
      deployment.hidden = true;
      createBtn.disabled = false;
      createMsg.error(e);
      return;
    }
    wizard.hidden = true;
    deployment.hidden = false;
    const ruleErrors = [];
    for (const r of wanted) {
      status.progress(`Adding firewall rule ${r.name}…`);
      try {
        await api.begin('PUT', `${id}/firewallRules/${encodeURIComponent(r.name)}`, api.apiVersions.postgres, { properties: { startIpAddress: r.start, endIpAddress: r.end } });
      } catch (e) { ruleErrors.push([r, e]); }
    }
    head.textContent = 'Your deployment is complete';
    status.ok(`Server ${name} is created.`);
    deployment.append(...ruleErrors.map(([r, e]) => h('div', {}, h('p', {}, `Firewall rule ${r.name} was not added:`), errorBox(e))),
      h('div', { class: 'toolbar' }, link('Go to resource', resourceRoute(id), { class: 'btn primary' })));
    head.focus();
  }

  t.select('basics');
  // Options from the API.
  api.listSubscriptions().then((subs) => {
    if (subs.length) subscription.setOptions(subs.map((s) => ({ value: s.subscriptionId, label: s.displayName ? `${s.displayName} (${s.subscriptionId})` : s.subscriptionId })), mySub);
  }).catch(() => {});
  const groupsLoaded = loadGroups();
  try {
    const locs = await api.listLocations();
    region.setOptions(locs.map((l) => ({ value: l.name, label: l.displayName || l.name })), locs.some((l) => l.name === 'eastus') ? 'eastus' : (locs[0] && locs[0].name));
  } catch (e) { capsMsg.error(e); }
  security.setLocation(region.value);
  await Promise.all([groupsLoaded, loadCaps()]);
  return null;
}
