// The rule builder's page (designer/templates/scenarios/rule_edit.html): shows the parts of the
// form that the chosen time pattern, repeat and severity use, offers the fields of the chosen
// event types (from /designer/vocabulary.json), and adds rows and correlated events. Plain JS, no
// build step. Without it the form still works: every part is shown and the server checks all.
(function () {
  "use strict";
  var form = document.getElementById("rule-form");
  if (!form) return;

  var vocab = null;   // {sources: [{key, name, types: [{type, fields, labels}]}], envelope, ops}
  var byType = {};    // event type -> {fields: {name: type}, labels: {name: label}}
  var HINTS = {integer: "3", number: "1.5", boolean: "true / false",
               datetime: "2025-07-01", string: "", object: "", array: ""};
  // The last index of a row's field name: conditions-2-value, patterns-1-conditions-2-value.
  var ROW_INDEX = /-(\d+)-([^-]*)$/;

  function byId(id) { return document.getElementById(id); }

  // -- which parts are shown --------------------------------------------------------------------

  function show() {
    var kind = byId("kind").value, deadline = byId("deadline").value;
    var severity = byId("severity").value;
    form.querySelectorAll("[data-kinds]").forEach(function (el) {
      var on = el.dataset.kinds.split(" ").indexOf(kind) >= 0;
      if (on && kind === "absent" && el.dataset.deadline) on = el.dataset.deadline === deadline;
      el.hidden = !on;
    });
    form.querySelectorAll("[data-deadline]:not([data-kinds])").forEach(function (el) {
      el.hidden = el.dataset.deadline !== deadline;
    });
    form.querySelectorAll("[data-severity]").forEach(function (el) {
      el.hidden = el.dataset.severity !== severity;
    });
    var repeat = byId("repeat").value;
    form.querySelectorAll("[data-repeat]").forEach(function (el) {
      el.hidden = el.dataset.repeat !== repeat;
    });
  }

  // -- fields of the chosen event types ---------------------------------------------------------

  function fieldsOf(type, withEnvelope) {
    var known = byType[type], out = [];
    if (known) {
      Object.keys(known.fields).forEach(function (name) {
        out.push({name: name, label: known.labels[name] || name, kind: known.fields[name]});
      });
    }
    if (withEnvelope) {
      Object.keys(vocab.envelope).forEach(function (name) {
        if (!known || !(name in known.fields)) {
          var e = vocab.envelope[name];
          out.push({name: name, label: e.label, kind: e.type});
        }
      });
    }
    return out;
  }

  // Replace a drop-down's options; `keep` keeps a value that is not offered (the page's own).
  function fill(select, options, keep) {
    var current = select.value;
    select.innerHTML = "";
    select.appendChild(new Option("—", ""));
    options.forEach(function (o) {
      var option = new Option(o.label, o.name);
      option.dataset.kind = o.kind;
      select.appendChild(option);
    });
    var offered = options.some(function (o) { return o.name === current; });
    if (current && !offered && keep) select.appendChild(new Option(current, current));
    select.value = offered || keep ? current : "";
  }

  // The tests that make sense on the row's field, and an example value.
  function hint(select) {
    var row = select.closest("tr");
    var chosen = select.options[select.selectedIndex];
    var kind = chosen && chosen.dataset.kind;
    var op = row.querySelector("select[id$='-op']");
    var value = row.querySelector("input[id$='-value']");
    if (op) {
      var ops = vocab && kind ? vocab.ops[kind] : null;
      Array.prototype.forEach.call(op.options, function (o) {
        o.disabled = !!ops && ops.indexOf(o.value) < 0;
      });
    }
    if (value) value.placeholder = HINTS[kind] || "";
  }

  // The event type whose fields a table of conditions tests.
  function tableType(table) {
    if (table.dataset.fields === "awaited") return byId("awaited_event").value;
    if (table.dataset.fields === "pattern") {
      var own = table.closest("[data-pattern]").querySelector("select[id$='-event']");
      return own ? own.value : "";
    }
    return byId("event").value;
  }

  function fillTable(table, keep) {
    table.querySelectorAll("select[id$='-field']").forEach(function (select) {
      fill(select, fieldsOf(tableType(table), true), keep);
      hint(select);
    });
  }

  function refreshFields(keep) {
    var main = byId("event").value;
    form.querySelectorAll("table[data-fields]").forEach(function (table) {
      fillTable(table, keep);
    });
    fill(byId("deadline_field"), fieldsOf(main, false).filter(function (o) {
      return o.kind === "datetime";
    }), keep);
    fill(byId("severity_by"), fieldsOf(main, false).filter(function (o) {
      return o.kind === "integer" || o.kind === "number";
    }), keep);
  }

  // Only the event types of the chosen source are offered.
  function refreshTypes() {
    var source = byId("source").value, allowed = null;
    if (source) {
      allowed = {};
      vocab.sources.forEach(function (s) {
        if (s.key === source) s.types.forEach(function (t) { allowed[t.type] = true; });
      });
    }
    var select = byId("event");
    Array.prototype.forEach.call(select.options, function (o) {
      o.hidden = !!(allowed && o.value && !allowed[o.value]);
    });
    if (allowed && select.value && !allowed[select.value]) {
      select.value = "";
      refreshFields(false);
    }
  }

  // -- rows -------------------------------------------------------------------------------------

  function addRow(table) {
    var body = table.tBodies[0];
    var last = body.rows[body.rows.length - 1];
    var next = 0;
    body.querySelectorAll("[name]").forEach(function (el) {
      var m = ROW_INDEX.exec(el.getAttribute("name"));
      if (m) next = Math.max(next, parseInt(m[1], 10) + 1);
    });
    var copy = last.cloneNode(true);
    copy.querySelectorAll("input, select").forEach(function (el) {
      ["name", "id"].forEach(function (attr) {
        var v = el.getAttribute(attr);
        if (v) el.setAttribute(attr, v.replace(ROW_INDEX, "-" + next + "-$2"));
      });
    });
    clear(copy);
    body.appendChild(copy);
    var field = copy.querySelector("select[id$='-field']");
    if (field && vocab) hint(field);
  }

  function clear(el) {
    el.querySelectorAll("input, select").forEach(function (input) {
      if (input.tagName === "SELECT") input.selectedIndex = 0; else input.value = "";
    });
    el.querySelectorAll(".error").forEach(function (e) { e.remove(); });
  }

  // A further correlated event: a copy of the last one, emptied, under the next index.
  function addPattern(button) {
    var all = form.querySelectorAll("[data-pattern]");
    if (!all.length || all.length >= parseInt(button.dataset.max, 10)) return;
    var last = all[all.length - 1], next = 0;
    all.forEach(function (p) {
      next = Math.max(next, parseInt(p.id.split("-")[1], 10) + 1);
    });
    var from = last.id + "-", to = "patterns-" + next + "-";
    var copy = last.cloneNode(true);
    copy.id = "patterns-" + next;
    copy.querySelectorAll("[name], [id], [for], [data-table]").forEach(function (el) {
      ["name", "id", "for", "data-table"].forEach(function (attr) {
        var v = el.getAttribute(attr);
        if (v && v.indexOf(from) === 0) el.setAttribute(attr, to + v.slice(from.length));
      });
    });
    copy.querySelectorAll(".number").forEach(function (n) { n.textContent = all.length + 2; });
    clear(copy);
    last.parentNode.insertBefore(copy, last.nextSibling);
    if (vocab) copy.querySelectorAll("table[data-fields]").forEach(function (t) {
      fillTable(t, false);
    });
  }

  form.addEventListener("click", function (e) {
    var button = e.target.closest(".add-row");
    if (button) addRow(byId(button.dataset.table));
    var more = e.target.closest(".add-pattern");
    if (more) addPattern(more);
  });

  form.addEventListener("change", function (e) {
    var id = e.target.id;
    if (id === "kind" || id === "deadline" || id === "severity" || id === "repeat") show();
    if (!vocab) return;
    if (id === "source") refreshTypes();
    if (id === "event" || id === "awaited_event") refreshFields(false);
    if (/^patterns-\d+-event$/.test(id)) {
      e.target.closest("[data-pattern]").querySelectorAll("table[data-fields]").forEach(
        function (table) { fillTable(table, false); });
    }
    if (/-field$/.test(id)) hint(e.target);
  });

  show();
  fetch(form.dataset.vocabulary, {credentials: "same-origin"})
    .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
    .then(function (data) {
      vocab = data;
      data.sources.forEach(function (s) {
        s.types.forEach(function (t) { byType[t.type] = t; });
      });
      refreshTypes();
      refreshFields(true);
    })
    .catch(function () { /* the drop-downs the server filled stay as they are */ });
})();
