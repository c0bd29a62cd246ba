// Starts Swagger UI on /api/docs; kept out of the page because the CSP forbids inline script.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    // "Try it out" sends the session's CSRF token like the pages do.
    requestInterceptor: function (request) {
      request.headers["X-CSRF-Token"] = root.dataset.csrfToken;
      return request;
    },
  });
});
