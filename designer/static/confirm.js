// Ask before a form that cannot be undone is sent: <form data-confirm="question">. An inline
// onsubmit="return confirm(…)" would be blocked by the Content-Security-Policy (script-src
// 'self'), and the form would then go without asking.
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
