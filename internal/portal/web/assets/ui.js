// Small DOM helpers. Every control gets an accessible name (a <label>, a <legend> or its text)
// because users reach controls by name, with the keyboard and with assistive technology, and
// the browser tests select them the same way. No inline styles or scripts: the page's CSP
// forbids them.

let nextId = 0;

// extend copies source's properties, getters and setters as such, onto target.
function extend(target, source) { return Object.defineProperties(target, Object.getOwnPropertyDescriptors(source)); }

export function uid(prefix = 'c') { nextId += 1; return `${prefix}-${nextId}`; }

// h builds an element: h('button', {class: 'primary', onclick: fn}, 'Save').
// Props starting with "on" are listeners; "class" and "text" are shorthands; false/null are skipped.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }

export function button(label, onclick, { primary = false, danger = false, disabled = false, ariaLabel } = {}) {
  return h('button', {
    type: 'button', class: ['btn', primary && 'primary', danger && 'danger'].filter(Boolean).join(' '),
    onclick, disabled, 'aria-label': ariaLabel,
  }, label);
}

// field wraps a control with its label, an optional hint and an inline error (role=alert).
// It returns {el, control, setError(msg)}.
function field(label, control, { hint, required } = {}) {
  const id = control.id || (control.id = uid('f'));
  const err = h('div', { class: 'field-error', role: 'alert', id: id + '-err', hidden: true });
  const hintEl = hint ? h('div', { class: 'hint', id: id + '-hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  if (required) control.required = true;
  const el = h('div', { class: 'field' }, h('label', { for: id }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null), control, hintEl, err);
  return {
    el, control,
    setError(msg) {
      err.textContent = msg || '';
      err.hidden = !msg;
      if (msg) control.setAttribute('aria-invalid', 'true'); else control.removeAttribute('aria-invalid');
    },
  };
}

export function textInput(label, { value = '', type = 'text', required = false, hint, placeholder, autocomplete = 'off' } = {}) {
  const input = h('input', { type, value, placeholder, autocomplete, spellcheck: 'false' });
  const f = field(label, input, { hint, required });
  return extend(f, {
    get value() { return input.value.trim(); },
    set value(v) { input.value = v; },
  });
}

// selectInput: options are [{value, label}] or strings.
export function selectInput(label, options = [], { value, required = false, hint, placeholder } = {}) {
  const sel = h('select', {});
  const f = field(label, sel, { hint, required });
  const api = extend(f, {
    setOptions(opts, selected) {
      clear(sel);
      if (placeholder) sel.append(h('option', { value: '' }, placeholder));
      for (const o of opts) {
        const v = typeof o === 'string' ? o : o.value;
        sel.append(h('option', { value: v }, typeof o === 'string' ? o : o.label));
      }
      if (selected !== undefined) sel.value = selected;
    },
    get value() { return sel.value; },
    set value(v) { sel.value = v; },
    onChange(fn) { sel.addEventListener('change', () => fn(sel.value)); return api; },
  });
  api.setOptions(options, value);
  return api;
}

// radioGroup: a fieldset whose legend names the group; options are [{value, label}].
export function radioGroup(legend, options, { value, onchange, name = uid('r') } = {}) {
  const inputs = [];
  const fs = h('fieldset', { class: 'radios' }, h('legend', {}, legend));
  for (const o of options) {
    const id = uid('o');
    const input = h('input', { type: 'radio', name, id, value: o.value, checked: o.value === value });
    input.addEventListener('change', () => { if (input.checked && onchange) onchange(o.value); });
    inputs.push(input);
    fs.append(h('div', { class: 'radio' }, input, h('label', { for: id }, o.label)));
  }
  return {
    el: fs,
    get value() { const c = inputs.find((i) => i.checked); return c ? c.value : ''; },
    set value(v) { for (const i of inputs) i.checked = i.value === v; },
  };
}

export function checkbox(label, { checked = false, onchange, hint } = {}) {
  const id = uid('cb');
  const input = h('input', { type: 'checkbox', id, checked });
  if (onchange) input.addEventListener('change', () => onchange(input.checked));
  const el = h('div', { class: 'checkbox' }, input, h('label', { for: id }, label), hint ? h('div', { class: 'hint' }, hint) : null);
  return {
    el, input,
    get checked() { return input.checked; },
    set checked(v) { input.checked = v; },
  };
}

// errorBox shows an API error (or any Error) inline, with Azure's code and message.
export function errorBox(err) {
  const code = err && err.code ? err.code : '';
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', {}, code ? `${code}: ` : 'Error: '), h('span', { class: 'error-message' }, (err && err.message) || String(err)));
}

// messageArea is a place for a form's outcome: show(err) or ok(text) or clear().
export function messageArea() {
  const el = h('div', { class: 'messages' });
  return {
    el,
    error(err) { clear(el).append(errorBox(err)); },
    ok(text) { clear(el).append(h('div', { class: 'ok-box', role: 'status' }, text)); },
    progress(text) { clear(el).append(h('div', { class: 'progress-box', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text)); },
    clear() { clear(el); },
  };
}

// notify puts a message into the header's live region (read out by screen readers).
export function notify(text, kind = 'info') {
  const area = document.getElementById('notifications');
  if (!area) return;
  const n = h('div', { class: `notification ${kind}` }, text);
  area.append(n);
  setTimeout(() => n.remove(), 8000);
}

// paneStack holds the open panes' backdrops, the top one last.
const paneStack = [];

// closeAllPanels closes every open pane (the page under them is being replaced).
export function closeAllPanels() {
  for (const b of [...paneStack].reverse()) {
    const c = b.querySelector('.panel-head .close');
    if (c) c.click();
  }
}

// openPanel opens a context pane (a modal dialog on the right, as Azure's portal does) titled
// title, with content and footer actions. Escape or the Close button closes it; focus returns
// to where it was. Returns {el, body, close}.
export function openPanel(title, content, actions = []) {
  const opener = document.activeElement;
  const titleId = uid('pt');
  const closeBtn = button('Close', () => close(), { ariaLabel: 'Close' });
  closeBtn.classList.add('close');
  const body = h('div', { class: 'panel-body' }, content);
  const dialog = h('div', { class: 'panel', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': titleId },
    h('div', { class: 'panel-head' }, h('h2', { id: titleId }, title), closeBtn),
    body,
    h('div', { class: 'panel-foot' }, actions));
  const backdrop = h('div', { class: 'backdrop' }, dialog);
  // Only the top pane hears keys: Escape in a pane opened from a pane closes that one alone.
  function onKey(e) {
    if (paneStack[paneStack.length - 1] !== backdrop) return;
    if (e.key === 'Escape') { e.preventDefault(); close(); }
    if (e.key === 'Tab') trapFocus(dialog, e);
  }
  // What is behind the top pane (the page, and any pane under it) is inert: out of the tab
  // order and of the accessibility tree.
  const app = document.getElementById('app');
  const below = paneStack.length ? paneStack[paneStack.length - 1] : app;
  if (below) below.inert = true;
  paneStack.push(backdrop);
  function close() {
    const i = paneStack.indexOf(backdrop);
    if (i < 0) return;
    paneStack.splice(i, 1);
    backdrop.remove();
    document.removeEventListener('keydown', onKey, true);
    const top = paneStack.length ? paneStack[paneStack.length - 1] : app;
    if (top) top.inert = false;
    if (opener && opener.isConnected && opener.focus) opener.focus();
  }
  document.addEventListener('keydown', onKey, true);
  document.body.append(backdrop);
  const first = dialog.querySelector('input, select, textarea, button:not(.close)');
  (first || closeBtn).focus();
  return { el: dialog, body, close };
}

function trapFocus(container, e) {
  const f = [...container.querySelectorAll('button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])')].filter((x) => !x.disabled && x.offsetParent !== null);
  if (!f.length) return;
  const first = f[0];
  const last = f[f.length - 1];
  if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
}

// confirmDialog asks before a destructive action; resolves true if confirmed.
export function confirmDialog(title, message, confirmLabel = 'Yes') {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v) => { if (!done) { done = true; p.close(); resolve(v); } };
    const p = openPanel(title, h('p', {}, message), [
      button(confirmLabel, () => finish(true), { primary: true }),
      button('Cancel', () => finish(false)),
    ]);
    p.el.setAttribute('role', 'alertdialog');
    const observer = new MutationObserver(() => { if (!p.el.isConnected) { observer.disconnect(); if (!done) { done = true; resolve(false); } } });
    observer.observe(document.body, { childList: true });
  });
}

// table renders rows as a table with a caption (its accessible name).
export function table(caption, columns, rows, { empty = 'No items.' } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('table', { class: 'grid' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', {}, c.render ? c.render(r) : r[c.key]))))));
}

// tabs: [{id, label, render(container)}]; returns {el, select(id)}. Arrow keys move between tabs.
export function tabs(list, { label = 'Tabs', onselect } = {}) {
  const tablist = h('div', { role: 'tablist', 'aria-label': label, class: 'tabs' });
  const panels = h('div', { class: 'tab-panels' });
  const entries = list.map((t) => {
    const tab = h('button', { type: 'button', role: 'tab', id: uid('tab'), 'aria-selected': 'false', tabindex: '-1' }, t.label);
    const panel = h('div', { role: 'tabpanel', 'aria-labelledby': tab.id, hidden: true, class: 'tab-panel' });
    tab.addEventListener('click', () => select(t.id));
    tab.addEventListener('keydown', (e) => {
      const i = list.indexOf(t);
      if (e.key === 'ArrowRight') { select(list[(i + 1) % list.length].id); entries[(i + 1) % list.length].tab.focus(); }
      if (e.key === 'ArrowLeft') { select(list[(i - 1 + list.length) % list.length].id); entries[(i - 1 + list.length) % list.length].tab.focus(); }
    });
    tablist.append(tab);
    panels.append(panel);
    return { t, tab, panel, rendered: false };
  });
  function select(id) {
    for (const e of entries) {
      const on = e.t.id === id;
      e.tab.setAttribute('aria-selected', String(on));
      e.tab.tabIndex = on ? 0 : -1;
      e.panel.hidden = !on;
      if (on && !e.rendered) { e.rendered = true; e.t.render(e.panel); }
    }
    if (onselect) onselect(id);
  }
  return { el: h('div', { class: 'tabset' }, tablist, panels), select };
}

// statusBadge shows a server's state with its word, never colour alone.
export function statusBadge(state) {
  const s = state || 'Unknown';
  return h('span', { class: `status status-${s.toLowerCase()}` }, s);
}

// link is an in-portal link to a route.
export function link(text, route, props = {}) { return h('a', Object.assign({ href: '#' + route }, props), text); }

// copyable shows a value with a Copy button (connection strings, key ids).
export function copyable(label, value) {
  const id = uid('cp');
  const input = h('input', { id, value, readonly: true, class: 'copy-value' });
  return h('div', { class: 'field copyable' }, h('label', { for: id }, label),
    h('div', { class: 'copy-row' }, input, button('Copy', () => navigator.clipboard && navigator.clipboard.writeText(value).catch(() => {}), { ariaLabel: `Copy ${label}` })));
}

export function heading(text, level = 1) { return h('h' + level, {}, text); }

export function formatTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}
