/* lowbit-bench leaderboard: renders the table from the embedded JSON, with sorting and
 * filtering whose state lives in the URL hash (so it survives a reload and can be shared).
 * Only textContent and DOM properties are used: no string reaches innerHTML. */
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('lb-data').textContent);
  var cols = data.columns;
  var rows = data.rows;
  var FILTERS = [
    { key: 'model', label: 'model' },
    { key: 'scheme', label: 'scheme' },
    { key: 'method', label: 'method' },
    { key: 'bits', label: 'bit width' },
  ];
  var state = readState();

  function readState() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ''));
    var s = { sort: p.get('sort') || '', dir: p.get('dir') === 'asc' ? 'asc' : p.get('dir') === 'desc' ? 'desc' : '', f: {} };
    FILTERS.forEach(function (f) {
      var v = p.get(f.key);
      if (v !== null && v !== '') s.f[f.key] = v;
    });
    return s;
  }

  function writeState() {
    var p = new URLSearchParams();
    if (state.sort) {
      p.set('sort', state.sort);
      p.set('dir', state.dir);
    }
    FILTERS.forEach(function (f) {
      if (state.f[f.key] !== undefined) p.set(f.key, state.f[f.key]);
    });
    var h = p.toString();
    history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  }

  function fmt(col, x) {
    if (x === null || x === undefined) return '\u2014';
    if (col.type === 'text') return String(x);
    if (typeof x === 'number') x = [x, null];
    var v = x[0];
    var se = x[1];
    var f = function (n) {
      switch (col.fmt) {
        case 'pct': return (n * 100).toFixed(2) + '%';
        case 'f4': return n.toFixed(4);
        case 'f3': return n.toFixed(3);
        case 'f2': return n.toFixed(2);
        case 'sec': return n.toFixed(1) + ' s';
        case 'int': return String(Math.round(n));
        default: return Math.abs(n) >= 1000 || (n !== 0 && Math.abs(n) < 0.001) ? n.toExponential(3) : n.toPrecision(4);
      }
    };
    return se === null || se === undefined ? f(v) : f(v) + ' \u00b1 ' + f(se);
  }

  function sortValue(col, r) {
    var x = r.v[col.id];
    if (x === null || x === undefined) return null;
    if (col.type === 'text') return String(x);
    return typeof x === 'number' ? x : x[0];
  }

  function filtered() {
    return rows.filter(function (r) {
      return FILTERS.every(function (f) {
        var want = state.f[f.key];
        return want === undefined || String(r.v[f.key]) === want;
      });
    });
  }

  function sorted(list) {
    var col = null;
    for (var i = 0; i < cols.length; i++) if (cols[i].id === state.sort) col = cols[i];
    if (!col) return list; // server order: model, baseline first, bit width
    var sign = state.dir === 'asc' ? 1 : -1;
    return list
      .map(function (r, i) { return { r: r, i: i, k: sortValue(col, r) }; })
      .sort(function (a, b) {
        // Missing values always last, whatever the direction.
        if (a.k === null && b.k === null) return a.i - b.i;
        if (a.k === null) return 1;
        if (b.k === null) return -1;
        var c = typeof a.k === 'string' ? a.k.localeCompare(b.k) : a.k - b.k;
        return c !== 0 ? sign * c : a.i - b.i;
      })
      .map(function (x) { return x.r; });
  }

  var table = document.getElementById('leaderboard');
  var thead = table.tHead || table.createTHead();
  var tbody = table.tBodies[0] || table.createTBody();

  function renderHead() {
    thead.textContent = '';
    var tr = document.createElement('tr');
    cols.forEach(function (col) {
      var th = document.createElement('th');
      th.scope = 'col';
      th.dataset.col = col.id;
      th.title = col.title + ' (click to sort)';
      th.className = col.type === 'num' ? 'num' : '';
      var b = document.createElement('button');
      b.type = 'button';
      b.textContent = col.label;
      th.appendChild(b);
      if (state.sort === col.id) th.setAttribute('aria-sort', state.dir === 'asc' ? 'ascending' : 'descending');
      b.addEventListener('click', function () {
        if (state.sort === col.id) state.dir = state.dir === 'asc' ? 'desc' : 'asc';
        else {
          state.sort = col.id;
          state.dir = col.type === 'text' || col.hib === false ? 'asc' : 'desc';
        }
        writeState();
        render();
      });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
  }

  function renderBody() {
    var list = sorted(filtered());
    var frag = document.createDocumentFragment();
    list.forEach(function (r) {
      var tr = document.createElement('tr');
      tr.dataset.key = r.id;
      if (r.baseline) tr.className = 'baseline';
      cols.forEach(function (col) {
        var td = document.createElement('td');
        if (col.type === 'num') td.className = 'num';
        var text = fmt(col, r.v[col.id]);
        if (col.id === 'model' && r.href) {
          var a = document.createElement('a');
          a.href = r.href;
          a.textContent = text;
          td.appendChild(a);
        } else td.textContent = text;
        if (col.id === 'scheme' && r.baseline) {
          var badge = document.createElement('span');
          badge.className = 'badge';
          badge.textContent = 'baseline';
          td.appendChild(document.createTextNode(' '));
          td.appendChild(badge);
        }
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    tbody.textContent = '';
    tbody.appendChild(frag);
    document.getElementById('row-count').textContent = list.length + ' of ' + rows.length + ' rows';
  }

  function renderFilters() {
    var box = document.getElementById('filters');
    box.textContent = '';
    FILTERS.forEach(function (f) {
      var label = document.createElement('label');
      label.textContent = f.label + ' ';
      var sel = document.createElement('select');
      sel.name = f.key;
      sel.id = 'filter-' + f.key;
      var all = document.createElement('option');
      all.value = '';
      all.textContent = 'all';
      sel.appendChild(all);
      var seen = {};
      var values = [];
      rows.forEach(function (r) {
        var v = String(r.v[f.key]);
        if (!Object.prototype.hasOwnProperty.call(seen, v)) {
          seen[v] = true;
          values.push(v);
        }
      });
      values.sort(function (a, b) {
        var na = Number(a), nb = Number(b);
        return f.key === 'bits' && !isNaN(na) && !isNaN(nb) ? na - nb : a.localeCompare(b);
      });
      values.forEach(function (v) {
        var o = document.createElement('option');
        o.value = v;
        o.textContent = v;
        sel.appendChild(o);
      });
      sel.value = state.f[f.key] !== undefined && seen[state.f[f.key]] ? state.f[f.key] : '';
      sel.addEventListener('change', function () {
        if (sel.value === '') delete state.f[f.key];
        else state.f[f.key] = sel.value;
        writeState();
        renderBody();
      });
      label.appendChild(sel);
      box.appendChild(label);
    });
  }

  function render() {
    renderHead();
    renderBody();
  }

  window.addEventListener('hashchange', function () {
    state = readState();
    renderFilters();
    render();
  });
  renderFilters();
  render();
  document.body.dataset.tableReady = '1';
  if (window.performance && performance.mark) performance.mark('table-rendered');
})();
