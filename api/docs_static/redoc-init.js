// Starts ReDoc on /redoc from the document the page names in data-openapi (no inline script).
"use strict";
(function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapi, {}, root);
})();
