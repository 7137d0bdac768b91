// The pages' words in scripts: `both("English id", {name: value})` gives "Vietnamese / English",
// the Vietnamese from the catalogue as the page embeds it for its scripts (#ioc-messages,
// designer/i18n.py script_messages). Values fill %(name)s.
(function () {
  "use strict";
  const node = document.getElementById("ioc-messages");
  const messages = node ? JSON.parse(node.textContent || "{}") : {};
  function fill(text, values) {
    return values ? text.replace(/%\((\w+)\)s/g, (_, key) => String(values[key])) : text;
  }
  window.both = function (message, values) {
    const vietnamese = fill(messages[message] || message, values);
    const english = fill(message, values);
    return vietnamese === english ? vietnamese : vietnamese + " / " + english;
  };
})();
