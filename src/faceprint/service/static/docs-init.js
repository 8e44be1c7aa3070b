// The API docs page (/docs): Swagger UI from the swagger-ui-bundle package, served by this
// server, so the page works offline and asks no other host for anything.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
