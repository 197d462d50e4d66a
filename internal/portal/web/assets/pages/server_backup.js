// A server's Backup and restore blade: its backups (automatic and on-demand), Backup now (an
// on-demand full backup), Restore (a point-in-time restore into a new server, with its own
// Security choices: restoring is the only way to move between a service-managed and a
// customer-managed key) and, for geo-redundant servers, Geo-restore into the paired region.
// Everything goes through the API: the flexibleServers/backups resource and a PUT of a new
// server with createMode PointInTimeRestore or GeoRestore.
import * as api from '../api.js';
import {
  h, clear, button, textInput, radioGroup, checkbox, messageArea, openPanel, confirmDialog, notify, table, formatTime, tabs,
} from '../ui.js';
import { resourceRoute } from '../app.js';

export default async function render(ctx, server) {
  const { main } = ctx;
  const view = h('div', {});
  main.append(view);
  showList(ctx, server, view);
  return null;
}

// showList renders the blade's main view: the backup settings, the toolbar and the backups.
function showList(ctx, server, view) {
  clear(view);
  const s = server.current || {};
  const p = s.properties || {};
  const backup = p.backup || {};
  const geo = backup.geoRedundantBackup === 'Enabled';
  const msg = messageArea();
  const listArea = h('div', { class: 'backups' });
  const toolbar = h('div', { class: 'toolbar' },
    button('Backup now', () => backupNow(server, reload), { primary: true }),
    button('Restore', () => showRestore(ctx, server, view, 'PointInTimeRestore')),
    geo ? button('Geo-restore', () => showRestore(ctx, server, view, 'GeoRestore')) : null,
    button('Refresh', () => reload()));
  const settings = h('dl', { class: 'props' },
    h('dt', {}, 'Earliest restore point'), h('dd', { class: 'earliest' }, backup.earliestRestoreDate ? formatTime(backup.earliestRestoreDate) : 'No backup yet'),
    h('dt', {}, 'Backup retention period'), h('dd', {}, `${backup.backupRetentionDays || 7} days`),
    h('dt', {}, 'Geo-redundant backup'), h('dd', {}, geo ? 'Enabled' : 'Disabled'));
  view.append(toolbar, settings, msg.el, h('h2', {}, 'Available backups'), listArea);

  async function reload() {
    try {
      const [rows, fresh] = await Promise.all([
        api.list(`${server.id}/backups`, api.apiVersions.postgres),
        server.get(),
      ]);
      const b = (fresh.properties && fresh.properties.backup) || {};
      settings.querySelector('.earliest').textContent = b.earliestRestoreDate ? formatTime(b.earliestRestoreDate) : 'No backup yet';
      rows.sort((a, c) => String((c.properties || {}).completedTime).localeCompare(String((a.properties || {}).completedTime)));
      clear(listArea).append(table('Available backups', [
        { label: 'Backup name', render: (r) => r.name },
        { label: 'Completed time', render: (r) => formatTime((r.properties || {}).completedTime) },
        { label: 'Backup type', render: (r) => (r.properties || {}).backupType },
        { label: 'Source', render: (r) => (r.properties || {}).source },
        { label: 'Actions', render: (r) => ((r.properties || {}).source === 'Customer'
          ? button('Delete', () => deleteBackup(server, r.name, msg, reload), { ariaLabel: `Delete backup ${r.name}` })
          : '') },
      ], rows, { empty: 'No backups yet: the first one is taken when the server is created.' }));
    } catch (e) {
      msg.error(e);
    }
  }
  reload();
}

function defaultBackupName() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  return `ondemand-${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}-${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
}

// backupNow opens the pane of an on-demand backup: its name, then progress until it is taken.
function backupNow(server, reload) {
  const name = textInput('Backup name', { value: defaultBackupName(), required: true,
    hint: 'Letters, digits, "-", "_" and "." (up to 128), starting with a letter or digit.' });
  const msg = messageArea();
  const start = button('Backup', async () => {
    name.setError('');
    if (!name.value) { name.setError('Enter a name for the backup.'); name.control.focus(); return; }
    start.disabled = true;
    name.control.disabled = true;
    msg.progress(`Taking backup ${name.value}…`);
    try {
      await api.begin('PUT', `${server.id}/backups/${encodeURIComponent(name.value)}`, api.apiVersions.postgres, undefined,
        (st) => msg.progress(`Taking backup ${name.value}… (${st})`));
      pane.close();
      notify(`Backup ${name.value} of ${server.name} completed.`, 'success');
      reload();
    } catch (e) {
      msg.error(e);
      start.disabled = false;
      name.control.disabled = false;
    }
  }, { primary: true });
  const pane = openPanel('Backup now', h('div', {},
    h('p', {}, `An on-demand full backup of ${server.name}, encrypted like its automatic backups.`), name.el, msg.el),
  [start, button('Cancel', () => pane.close())]);
}

async function deleteBackup(server, name, msg, reload) {
  if (!await confirmDialog('Delete backup', `Delete the on-demand backup ${name} of ${server.name}?`, 'Delete')) return;
  msg.progress(`Deleting backup ${name}…`);
  try {
    await api.begin('DELETE', `${server.id}/backups/${encodeURIComponent(name)}`, api.apiVersions.postgres);
    msg.ok(`Backup ${name} deleted.`);
    reload();
  } catch (e) {
    msg.error(e);
  }
}

// pairedRegion is the paired region of a location, from the subscription's locations.
async function pairedRegion(location) {
  const locs = await api.listLocations();
  const norm = (x) => String(x || '').toLowerCase().replace(/\s+/g, '');
  const loc = locs.find((l) => norm(l.name) === norm(location));
  const pair = loc && loc.metadata && loc.metadata.pairedRegion && loc.metadata.pairedRegion[0];
  return pair ? pair.name : '';
}

// parseRestorePoint reads a restore point typed in UTC: "2026-12-07 10:30", "2026-12-07 10:30:15"
// or ISO 8601 with a zone ("2026-12-07T10:30:15Z", "...+01:00"); undefined if it is not one.
export function parseRestorePoint(text) {
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)\s*(Z|UTC|[+-]\d{2}:\d{2})?$/i.exec(String(text || '').trim());
  if (!m) return undefined;
  const zone = !m[3] || /^(z|utc)$/i.test(m[3]) ? 'Z' : m[3];
  const d = new Date(`${m[1]}T${m[2]}${zone}`);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

const serverNameRE = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

// showRestore replaces the list with the restore form: Basics (restore point, new server's
// name), Security (the new server's own key), Review + create; then the deployment.
async function showRestore(ctx, server, view, mode) {
  const geoMode = mode === 'GeoRestore';
  const source = await server.get().catch(() => server.current);
  const sp = source.properties || {};
  const earliest = (sp.backup || {}).earliestRestoreDate;
  clear(view);
  const title = geoMode ? 'Geo-restore' : 'Restore';
  const top = messageArea();
  view.append(h('h2', {}, title), top.el);
  let location = source.location;
  if (geoMode) {
    try {
      location = await pairedRegion(source.location);
    } catch (e) {
      top.error(e);
      return;
    }
  }
  let securitySection;
  try {
    ({ securitySection } = await import('../components/security.js'));
  } catch (e) {
    top.error(new Error('The Security section could not be loaded.'));
    return;
  }

  // Basics.
  const point = radioGroup('Restore point', [
    { value: 'latest', label: geoMode ? 'Latest restore point available in the paired region' : 'Latest restore point (Now)' },
    ...(geoMode ? [] : [{ value: 'custom', label: 'Select a custom restore point' }]),
  ], { value: 'latest', onchange: (v) => { custom.el.hidden = v !== 'custom'; } });
  const iso = (t) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const custom = textInput('Custom restore point (UTC)', { placeholder: 'YYYY-MM-DD hh:mm:ss',
    hint: earliest ? `A date and time in UTC, such as ${iso(Date.now() - 3600 * 1000)}, from the earliest restore point, ${iso(earliest)}, to now.` : 'The server has no backup yet.' });
  custom.el.hidden = true;
  const name = textInput('Server name', { required: true,
    hint: '3 to 63 lower-case letters, digits and hyphens; the new server gets the source\'s administrator and data.' });
  const geoBackup = checkbox('Geo-redundant backup', {
    hint: 'Copies the new server\'s backups to its paired region; with a customer-managed key, a second identity and key for that region are needed.',
    onchange: (v) => sec.setGeo(v),
  });
  const sec = securitySection({ location, geo: false, mode: 'restore' });
  const review = h('div', {});
  const msg = messageArea();
  const restoreBtn = button(title, () => submit(), { primary: true });
  const basics = (el) => el.append(
    h('dl', { class: 'props' },
      h('dt', {}, 'Source server'), h('dd', {}, source.name),
      h('dt', {}, 'Location'), h('dd', {}, location || 'No paired region'),
      h('dt', {}, 'Source data encryption'), h('dd', {}, ((sp.dataEncryption || {}).type === 'AzureKeyVault') ? 'Customer-managed key' : 'Service-managed key')),
    point.el, custom.el, name.el, geoBackup.el);
  const t = tabs([
    { id: 'basics', label: 'Basics', render: basics },
    { id: 'security', label: 'Security', render: (el) => el.append(sec.el) },
    { id: 'review', label: 'Review + create', render: (el) => el.append(review, restoreBtn) },
  ], { label: title, onselect: (id) => { if (id === 'review') fillReview(); } });
  const reviewBtn = button('Review + create', () => t.select('review'));
  const cancelBtn = button('Cancel', () => showList(ctx, server, view));
  const foot = h('div', { class: 'wizard-foot' }, reviewBtn, cancelBtn);
  view.append(t.el, msg.el, foot);
  t.select('basics');

  function pointInTime() {
    if (point.value !== 'custom') return geoMode ? null : new Date().toISOString();
    return parseRestorePoint(custom.value);
  }

  function body() {
    const props = { createMode: mode, sourceServerResourceId: source.id, backup: { geoRedundantBackup: geoBackup.checked ? 'Enabled' : 'Disabled' } };
    const pit = pointInTime();
    if (pit) props.pointInTimeUTC = pit;
    const b = { location, properties: props };
    const v = sec.value() || {};
    if (v.identity) b.identity = v.identity;
    if (v.dataEncryption) props.dataEncryption = v.dataEncryption;
    return b;
  }

  function fillReview() {
    const v = sec.value() || {};
    const de = v.dataEncryption || {};
    const cmk = de.type === 'AzureKeyVault';
    clear(review).append(h('dl', { class: 'props' },
      h('dt', {}, 'Source server'), h('dd', {}, source.name),
      h('dt', {}, 'Restore point'), h('dd', {}, point.value === 'custom' ? (pointInTime() || '(not set)') : 'Latest'),
      h('dt', {}, 'Server name'), h('dd', {}, name.value || '(not set)'),
      h('dt', {}, 'Location'), h('dd', {}, location),
      h('dt', {}, 'Geo-redundant backup'), h('dd', {}, geoBackup.checked ? 'Enabled' : 'Disabled'),
      h('dt', {}, 'Data encryption key'), h('dd', {}, cmk ? 'Customer-managed key' : 'Service-managed key'),
      cmk ? [h('dt', {}, 'Key'), h('dd', {}, de.primaryKeyURI || ''), h('dt', {}, 'User assigned managed identity'), h('dd', {}, de.primaryUserAssignedIdentityId || '')] : null));
  }

  // check validates what the API cannot see wrong for us; returns false and shows why.
  function check() {
    name.setError('');
    custom.setError('');
    let ok = true;
    const n = name.value;
    if (!n) { name.setError('Enter a name for the new server.'); ok = false; }
    else if (!serverNameRE.test(n)) { name.setError('The server name must be 3 to 63 characters of lower-case letters, digits and hyphens, and must not start or end with a hyphen.'); ok = false; }
    if (point.value === 'custom' && pointInTime() === undefined) {
      custom.setError(custom.value ? 'Enter the date and time in UTC as YYYY-MM-DD hh:mm:ss (or ISO 8601, such as 2026-12-07T10:30:00Z).' : 'Enter the date and time to restore to.');
      ok = false;
    }
    if (!location) { top.error(new Error(`The region ${source.location} has no paired region to geo-restore into.`)); ok = false; }
    if (!ok) t.select('basics');
    return ok;
  }

  let busy = false;
  async function submit() {
    if (busy || !check()) return;
    if (sec.validate && !sec.validate()) { t.select('security'); return; }
    let b;
    try {
      b = body();
    } catch (e) {
      // The Security section reports an incomplete choice (for example, no key selected).
      msg.error(e);
      t.select('security');
      return;
    }
    busy = true;
    restoreBtn.disabled = true;
    const target = api.serverPath(server.group, name.value);
    msg.progress('Deployment is in progress…');
    try {
      await api.begin('PUT', target, api.apiVersions.postgres, b, (st) => msg.progress(`Deployment is in progress… (${st})`));
      msg.ok(`Your deployment is complete: ${name.value} was restored from ${source.name}.`);
      msg.el.append(button('Go to resource', () => ctx.navigate(resourceRoute(target)), { primary: true }));
      reviewBtn.hidden = true;
      cancelBtn.textContent = 'Back to backups';
      notify(`Server ${name.value} restored.`, 'success');
    } catch (e) {
      msg.error(e);
      restoreBtn.disabled = false;
    } finally {
      busy = false;
    }
  }
}
