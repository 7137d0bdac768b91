// The process editor: bpmn-js draws; the server's side panel (WTForms) edits what the engine
// needs (departments, forms, timers, messages, conditions) and hands back the new XML.
(function () {
  "use strict";
  // Drawing needs a tablet or larger: on a phone the page says so plainly instead of opening a
  // modeler too narrow to use (checks, files and publishing still work from here).
  if (window.matchMedia("(max-width: 699px)").matches) {
    document.querySelectorAll("#save, #check").forEach((button) => { button.disabled = true; });
    document.getElementById("phone-note").hidden = false;
    document.querySelector(".editor").hidden = true;
    document.body.dataset.editorPhone = "true";
    return;
  }
  const config = JSON.parse(document.getElementById("designer-config").textContent);
  const csrf = document.getElementById("csrf").value;
  const panel = document.getElementById("panel");
  const statusLine = document.getElementById("status");
  // What the panel says while nothing is selected, as the page wrote it (in both languages).
  const emptyPanel = panel.innerHTML;
  const extensions = config.camunda ? { camunda: config.camunda } : {};
  const modeler = new BpmnJS({ container: "#canvas", keyboard: { bindTo: document },
                               moddleExtensions: extensions });
  const canvas = modeler.get("canvas");
  let revision = config.revision;
  let dirty = false;
  let selectedId = null;
  let markedIds = [];
  // Ids of the file as stored that bpmn-js would not write back (found right after loading):
  // the person is told at once and asked before the first save (issue 22: never silent).
  let dropped = [];

  function say(text, kind) {
    statusLine.textContent = text;
    statusLine.className = kind || "muted";
  }

  async function currentXml() {
    const { xml } = await modeler.saveXML({ format: true });
    return xml;
  }

  async function importKeepingView(xml) {
    const view = canvas.viewbox();
    await modeler.importXML(xml);
    canvas.viewbox(view);
    markProblems(config.problems);
  }

  // -- the side panel ---------------------------------------------------------------------

  function panelData(action, form) {
    const data = form ? new FormData(form) : new FormData();
    data.set("action", action);
    data.set("element_id", selectedId);
    data.set("csrf_token", csrf);
    return data;
  }

  async function postPanel(action, form) {
    const data = panelData(action, form);
    data.set("xml", await currentXml());
    const response = await fetch(config.panelUrl, { method: "POST", body: data,
                                                    headers: { "X-CSRFToken": csrf } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      panel.innerHTML = "";
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = body.error || both("Error") + " " + response.status;
      panel.appendChild(p);
      return;
    }
    if (body.xml) {
      await importKeepingView(body.xml);
      dirty = true;
      say(body.message || both("Updated"), "ok");
      const element = modeler.get("elementRegistry").get(body.element_id);
      if (element) {
        modeler.get("selection").select(element); // reopens the panel with the new values
      }
      return;
    }
    showPanelHtml(body);
  }

  function showPanelHtml(body) {
    panel.innerHTML = "";
    const heading = document.createElement("h3");
    heading.textContent = body.title || body.kind || "";
    const id = document.createElement("small");
    id.textContent = " " + body.element_id;
    heading.appendChild(id);
    panel.appendChild(heading);
    const holder = document.createElement("div");
    holder.innerHTML = body.html; // rendered by the server from its own template (escaped)
    panel.appendChild(holder);
    const form = holder.querySelector("form");
    showFieldsOfMode(holder);
    if (form) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        postPanel("apply", form).catch(failed);
      });
    }
  }

  // A timer panel names, on each field, the modes that use it: show only those.
  function showFieldsOfMode(holder) {
    const mode = holder.querySelector("select[name=mode]");
    if (!mode) return;
    const update = () => holder.querySelectorAll("[data-show-when]").forEach((field) => {
      field.hidden = !field.dataset.showWhen.split(" ").includes(mode.value);
    });
    mode.addEventListener("change", update);
    update();
  }

  function failed(error) {
    say(both("Error") + ": " + error, "error");
  }

  modeler.on("selection.changed", (event) => {
    const element = event.newSelection[0];
    if (!element || element.type === "label") {
      selectedId = null;
      panel.innerHTML = emptyPanel;
      return;
    }
    selectedId = element.businessObject.id;
    postPanel("show").catch(failed);
  });

  modeler.on("commandStack.changed", () => {
    dirty = true;
    say(both("Not saved"), "warn");
  });

  // -- saving and checks ------------------------------------------------------------------

  // What a file holds, element by element: an element with an id by its id, a diagram
  // element by what it draws, any other by its kind inside the nearest element with an id
  // (a condition, an extension, a label). Counted, so a lost one shows.
  function contentOf(xml) {
    const doc = new DOMParser().parseFromString(xml, "application/xml");
    const counts = new Map();
    const owners = new Map();
    const walk = (el, owner) => {
      const id = el.getAttribute("id");
      const key = id ? "#" + id : el.getAttribute("bpmnElement")
        ? el.localName + "[" + el.getAttribute("bpmnElement") + "]" : owner + ">" + el.localName;
      counts.set(key, (counts.get(key) || 0) + 1);
      owners.set(key, owner);
      Array.from(el.children).forEach((child) => walk(child, id || owner));
    };
    walk(doc.documentElement, "");
    return { counts, owners };
  }

  // What the stored file holds that bpmn-js would not write back: lost ids, and lost pieces
  // outside them (named "kind in owner-id").
  function lostContent(stored, kept) {
    const before = contentOf(stored);
    const after = contentOf(kept).counts;
    const lost = Array.from(before.counts).filter(([key, n]) => (after.get(key) || 0) < n)
      .map(([key]) => key);
    const lostIds = new Set(lost.filter((key) => key.startsWith("#")).map((key) => key.slice(1)));
    const inside = (key) => {
      for (let owner = before.owners.get(key); owner; owner = before.owners.get("#" + owner)) {
        if (lostIds.has(owner)) return true;
      }
      return false;
    };
    return lost.filter((key) => !inside(key)).map((key) => key.startsWith("#") ? key.slice(1)
      : key.includes(">") ? key.split(">")[1] + " in " + (key.split(">")[0] || "the file")
      : key);
  }

  // The values of the messages about them (outside the calls to both(): the message extractor
  // would take any string in a call's arguments for a message).
  function droppedValues() {
    return { count: dropped.length, names: dropped.join(", ") };
  }

  async function compareWithStored() {
    dropped = lostContent(config.xml, await currentXml());
    document.body.dataset.dropped = dropped.join(" | ");
    if (dropped.length) {
      say(both("The editor cannot keep %(count)s elements of the file: %(names)s — they will be lost on saving",
               droppedValues()), "warn");
    }
  }

  async function save() {
    if (dropped.length) {
      const message = both("Saving drops %(count)s elements the editor cannot keep: %(names)s. Go on?",
                           droppedValues());
      if (!window.confirm(message)) {
        say(both("Not saved: the file keeps them"), "warn");
        return false;
      }
      dropped = [];
    }
    const response = await fetch(config.saveUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ xml: await currentXml(), revision: revision, csrf_token: csrf }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(body.error || both("Not saved: %(status)s", { status: response.status }), "error");
      return false;
    }
    revision = body.revision;
    dirty = false;
    config.problems = body.problems;
    showProblems(body.problems);
    say(both("Saved"), "ok");
    return true;
  }

  function markProblems(problems) {
    const registry = modeler.get("elementRegistry");
    markedIds.forEach((id) => registry.get(id) && canvas.removeMarker(id, "has-problem"));
    markedIds = [];
    (problems || []).forEach((p) => {
      if (p.path && registry.get(p.path)) {
        canvas.addMarker(p.path, "has-problem");
        markedIds.push(p.path);
      }
    });
  }

  function showProblems(problems) {
    const list = document.getElementById("problem-list");
    list.innerHTML = "";
    problems.forEach((p) => {
      const item = document.createElement("li");
      item.dataset.element = p.path || "";
      const where = document.createElement("code");
      where.textContent = p.file + (p.line ? ":" + p.line : "");
      item.appendChild(where);
      if (p.path) {
        const strong = document.createElement("strong");
        strong.textContent = p.path;
        item.append(" · ", strong);
      }
      item.append(" — " + p.message);
      list.appendChild(item);
    });
    document.getElementById("problem-count").textContent = problems.length;
    document.getElementById("no-problems").hidden = problems.length > 0;
    markProblems(problems);
  }

  document.getElementById("problem-list").addEventListener("click", (event) => {
    const item = event.target.closest("li");
    const element = item && modeler.get("elementRegistry").get(item.dataset.element);
    if (element) {
      modeler.get("selection").select(element);
      canvas.scrollToElement(element);
    }
  });

  // A .bpmn from another modeller replaces the diagram once the person confirms (what is
  // drawn and not saved goes with it).
  document.getElementById("diagram-file").addEventListener("change", (event) => {
    const input = event.target;
    if (!input.files.length) return;
    if (window.confirm(both("Replace the current diagram with %(name)s?",
                            { name: input.files[0].name }))) {
      dirty = false;
      input.form.submit();
    } else {
      input.value = "";
    }
  });

  document.getElementById("save").addEventListener("click", () => save().catch(failed));
  document.getElementById("check").addEventListener("click", () => save().catch(failed));

  // Publishing (its page shows the changes first), a dry run or another tab first saves the
  // diagram, so nothing drawn is lost.
  document.querySelectorAll("nav.tabs a, #publish").forEach((link) => {
    link.addEventListener("click", (event) => {
      if (!dirty) return;
      event.preventDefault();
      save().then((ok) => { if (ok) window.location = link.href; }).catch(failed);
    });
  });
  window.addEventListener("beforeunload", (event) => {
    if (dirty) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  modeler.importXML(config.xml).then(async () => {
    canvas.zoom("fit-viewport", "auto");
    markProblems(config.problems);
    dirty = false;
    say("");
    await compareWithStored();
    document.body.dataset.editorReady = "true";
  }).catch((error) => {
    // Nothing drawn, nothing to save: the stored file stays as it is.
    document.querySelectorAll("#save, #check").forEach((button) => { button.disabled = true; });
    document.body.dataset.editorFailed = "true";
    // The error itself is bpmn-js's, in English only: said once, after both languages.
    say(both("The editor cannot open this diagram; the file stays as imported. Fix it in the tool that drew it and import it again") +
        " (" + error.message + ")", "error");
  });
  window.iocModeler = modeler; // for the browser test and the console
})();
