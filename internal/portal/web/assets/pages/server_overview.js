// A server's Overview blade: its status, kept live by reading the server every two seconds (an
// Inaccessible server says why, from the server's stateReason and its latest key event in the
// activity log), its essentials, connection strings, and Start / Stop / Restart / Delete, each
// confirmed first and followed to its end.
import * as api from '../api.js';
import { h, button, clear, confirmDialog, copyable, messageArea, notify, statusBadge } from '../ui.js';

const pollMs = 2000;

// Which states each action starts from (the API refuses the others; the buttons say so first).
const actions = {
  start: { label: 'Start', from: ['Stopped'], verb: 'Starting', done: 'Started' },
  stop: { label: 'Stop', from: ['Ready'], verb: 'Stopping', done: 'Stopped' },
  restart: { label: 'Restart', from: ['Ready'], verb: 'Restarting', done: 'Restarted' },
};

// Key events of the activity log (keymonitor.go) that explain a state.
const keyEvents = ['keyRevoked', 'accessRestored', 'keyVersionUpdated', 'geoBackupKeyInvalid', 'geoBackupKeyRestored'];

export default async function render(ctx, server) {
  const { main } = ctx;
  const msg = messageArea();
  let busy = false; // an action of this blade runs
  let stopped = false;
  let timer = null;
  let pollSeq = 0; // reads in flight: only the latest one is shown

  const buttons = {};
  for (const [k, a] of Object.entries(actions)) {
    buttons[k] = button(a.label, () => runAction(k), { ariaLabel: `${a.label} server` });
  }
  buttons.delete = button('Delete', () => deleteServer(), { danger: true, ariaLabel: 'Delete server' });
  buttons.refresh = button('Refresh', () => poll(true), { ariaLabel: 'Refresh' });

  // The status is a live region: a change of state is read out as it happens.
  const statusEl = h('span', { role: 'status', 'aria-label': 'Server status', class: 'server-status' });
  let lastReasonKey = null;
  let reasonEvent = null;
  let eventLookup = null;
  let eventTries = 0;

  const values = {};
  const dd = (k) => (values[k] = h('dd', {}));
  const essentials = h('dl', { class: 'props', 'aria-label': 'Essentials' },
    h('dt', {}, 'Status'), h('dd', {}, statusEl),
    h('dt', {}, 'Resource group'), dd('group'),
    h('dt', {}, 'Location'), dd('location'),
    h('dt', {}, 'Subscription'), dd('subscription'),
    h('dt', {}, 'Endpoint'), dd('endpoint'),
    h('dt', {}, 'Port'), dd('port'),
    h('dt', {}, 'Administrator login'), dd('admin'),
    h('dt', {}, 'PostgreSQL version'), dd('version'),
    h('dt', {}, 'Compute + storage'), dd('sku'),
    h('dt', {}, 'Availability zone'), dd('zone'),
    h('dt', {}, 'Data encryption'), dd('encryption'),
    h('dt', {}, 'Geo-redundant backup'), dd('geo'),
    h('dt', {}, 'Public network access'), dd('network'));
  const connSection = h('section', { 'aria-labelledby': 'conn-strings-h' });

  main.append(
    h('div', { class: 'toolbar' },
      buttons.start, buttons.stop, buttons.restart, buttons.delete, buttons.refresh),
    msg.el,
    h('h2', {}, 'Essentials'), essentials,
    connSection);

  function fill(s) {
    const p = s.properties || {};
    const port = api.info().postgresPort || 5432;
    const enc = p.dataEncryption || {};
    const cmk = enc.type === 'AzureKeyVault';
    values.group.textContent = server.group;
    values.location.textContent = s.location || '';
    values.subscription.textContent = api.parseId(s.id).subscription || '';
    values.endpoint.textContent = p.fullyQualifiedDomainName || '';
    values.port.textContent = String(port);
    values.admin.textContent = p.administratorLogin || '';
    values.version.textContent = p.version || '';
    const sku = s.sku || {};
    const storage = p.storage || {};
    values.sku.textContent = `${sku.tier || ''}, ${sku.name || ''}, ${storage.storageSizeGB || '?'} GiB storage`;
    values.zone.textContent = p.availabilityZone || 'No preference';
    values.encryption.textContent = cmk
      ? `Customer-managed key (key status: ${enc.primaryEncryptionKeyStatus || 'unknown'})`
      : 'Service-managed key';
    values.geo.textContent = (p.backup && p.backup.geoRedundantBackup) || 'Disabled';
    values.network.textContent = (p.network && p.network.publicNetworkAccess) || 'Enabled';
    showStatus(s);
    const state = p.state || '';
    buttons.start.disabled = busy || !actions.start.from.includes(state);
    buttons.stop.disabled = busy || !actions.stop.from.includes(state);
    buttons.restart.disabled = busy || !actions.restart.from.includes(state);
    buttons.delete.disabled = busy || state === 'Dropping';
  }

  function showStatus(s) {
    const p = s.properties || {};
    const state = p.state || 'Unknown';
    const transient = ['Updating', 'Starting', 'Stopping', 'Restarting', 'Provisioning', 'Dropping'].includes(state);
    const word = transient ? `${state}…` : state;
    let text = word;
    if (state === 'Inaccessible') {
      const reason = p.stateReason || (reasonEvent && reasonEvent.properties && reasonEvent.properties.cause) || 'the server cannot use its data encryption key';
      text = `Inaccessible: ${reason}`;
      if (reasonEvent) text += ` (${eventName(reasonEvent)})`;
      // The reason's event is looked up until it is found (the activity log records it just
      // after the state changes), a few times at most, not at every poll.
      const key = p.stateReason || '';
      if (key !== lastReasonKey) { lastReasonKey = key; reasonEvent = null; eventTries = 0; }
      if (!reasonEvent && !eventLookup && eventTries < 15) {
        eventTries += 1;
        eventLookup = latestKeyEvent(key).then((e) => {
          if (e && lastReasonKey === key) { reasonEvent = e; if (!stopped && server.current) showStatus(server.current); }
        }).catch(() => {}).finally(() => { eventLookup = null; });
      }
    } else if (p.stateReason) {
      text = `${word}: ${p.stateReason}`;
    }
    if (state !== 'Inaccessible') { lastReasonKey = null; reasonEvent = null; }
    if (statusEl.textContent !== text) {
      // The status reads as "Inaccessible: why (event)": the state's badge, then why.
      const badge = statusBadge(state);
      badge.textContent = word;
      clear(statusEl).append(badge, text === word ? '' : text.slice(word.length));
    }
  }

  // latestKeyEvent is the newest key event of the server, if it is the one that explains reason
  // (a keyRevoked event names its cause).
  async function latestKeyEvent(reason) {
    const filter = `eventTimestamp ge '${new Date(Date.now() - 7 * 864e5).toISOString()}' and resourceUri eq '${server.id}'`;
    const events = await api.list(`/subscriptions/${api.subscriptionId()}/providers/Microsoft.Insights/eventtypes/management/values?$filter=${encodeURIComponent(filter)}`, api.apiVersions.activity);
    const e = events.find((x) => keyEvents.includes(eventName(x)));
    if (!e) return null;
    const cause = e.properties && e.properties.cause;
    return !reason || !cause || cause === reason ? e : null;
  }

  function renderConnectionStrings(s) {
    const p = s.properties || {};
    const host = p.fullyQualifiedDomainName || '{host}';
    const port = String(api.info().postgresPort || 5432);
    const user = p.administratorLogin || '{login}';
    const db = 'postgres';
    const pw = '{your_password}';
    const uriHost = port === '5432' ? host : `${host}:${port}`;
    clear(connSection).append(
      h('h2', { id: 'conn-strings-h' }, 'Connection strings'),
      h('p', { class: 'hint' }, 'Replace {your_password} with the administrator password. Connections need a firewall rule for the client (Networking) and TLS.'),
      copyable('psql', `psql "host=${host} port=${port} dbname=${db} user=${user} sslmode=require"`),
      copyable('libpq URI', `postgresql://${encodeURIComponent(user)}:${pw}@${uriHost}/${db}?sslmode=require`),
      copyable('JDBC', `jdbc:postgresql://${host}:${port}/${db}?user=${user}&password=${pw}&sslmode=require`),
      copyable('ADO.NET', `Server=${host};Database=${db};Port=${port};User Id=${user};Password=${pw};Ssl Mode=Require;`));
  }

  async function poll(now = false) {
    clearTimeout(timer);
    if (stopped) return;
    const my = ++pollSeq;
    try {
      const s = await server.get();
      if (stopped || my !== pollSeq) return; // a newer read is on its way
      fill(s);
    } catch (e) {
      if (stopped || e instanceof api.SessionEnded) return;
      if (e.status === 404) {
        statusEl.textContent = 'Deleted';
        msg.error({ code: e.code, message: e.message });
        return;
      }
      // A failed read is shown but polling goes on: the next one may succeed.
      if (now) msg.error(e);
    }
    if (!stopped && my === pollSeq) timer = setTimeout(poll, pollMs);
  }

  async function runAction(k) {
    const a = actions[k];
    if (!await confirmDialog(`${a.label} server`, `Are you sure you want to ${k} server '${server.name}'?`, 'Yes')) return;
    busy = true;
    if (server.current) fill(server.current);
    msg.progress(`${a.verb} server '${server.name}'…`);
    poll();
    try {
      const body = k === 'restart' ? { restartWithFailover: false } : undefined;
      await api.begin('POST', `${server.id}/${k}`, api.apiVersions.postgres, body, () => {});
      msg.ok(`${a.done} server '${server.name}'.`);
      notify(`${a.done} server '${server.name}'.`, 'success');
    } catch (e) {
      if (e instanceof api.SessionEnded) return;
      msg.error(e);
    } finally {
      busy = false;
      poll();
    }
  }

  async function deleteServer() {
    if (!await confirmDialog('Delete server', `Are you sure you want to delete server '${server.name}'? Its databases and backups are deleted with it; this cannot be undone.`, 'Delete')) return;
    busy = true;
    if (server.current) fill(server.current);
    msg.progress(`Deleting server '${server.name}'…`);
    try {
      await api.begin('DELETE', server.id, api.apiVersions.postgres);
      stopped = true;
      clearTimeout(timer);
      notify(`Deleted server '${server.name}'.`, 'success');
      ctx.navigate('/browse/servers');
    } catch (e) {
      if (e instanceof api.SessionEnded) return;
      busy = false;
      msg.error(e);
      poll();
    }
  }

  fill(server.current);
  renderConnectionStrings(server.current);
  timer = setTimeout(poll, pollMs);
  return () => { stopped = true; clearTimeout(timer); };
}

function eventName(e) {
  const op = (e.operationName && (e.operationName.value || e.operationName)) || '';
  const parts = String(op).split('/');
  return parts.length >= 2 ? parts[parts.length - 2] : op;
}
