// A read-only diagram (a stored version, or a dry run's paths): bpmn-js NavigatedViewer, with
// markers on elements. config.marks: {element id: marker class}; config.paths: named sets.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("viewer-config").textContent);
  const extensions = config.camunda ? { camunda: config.camunda } : {};
  const viewer = new BpmnJS({ container: "#canvas", moddleExtensions: extensions });
  const canvas = viewer.get("canvas");
  let marked = [];

  function mark(marks) {
    const registry = viewer.get("elementRegistry");
    marked.forEach(([id, cls]) => canvas.removeMarker(id, cls));
    marked = [];
    Object.entries(marks || {}).forEach(([id, cls]) => {
      if (registry.get(id)) {
        canvas.addMarker(id, cls);
        marked.push([id, cls]);
      }
    });
  }

  viewer.importXML(config.xml).then(() => {
    canvas.zoom("fit-viewport", "auto");
    mark(config.marks);
    document.body.dataset.viewerReady = "true";
  });
  window.iocViewer = viewer; // for the browser test and the console
  // Buttons with data-marks='{"id": "class"}' show that set (a dry run's instance path).
  document.querySelectorAll("[data-marks]").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll("[data-marks].on").forEach((b) => b.classList.remove("on"));
      button.classList.add("on");
      mark(JSON.parse(button.dataset.marks));
    });
  });
})();
