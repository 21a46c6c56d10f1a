package web

import (
	_ "embed"
	"net/http"
)

// openAPISpec describes the REST API under /api/v1 (OpenAPI 3.1). It is
// written by hand beside the handlers; TestOpenAPIMatchesRouter holds it to
// the router (every route documented, every documented path routed, the
// same methods) and its schemas to the Go types the handlers encode.
//
//go:embed openapi.json
var openAPISpec []byte

// openAPI serves the description, to anyone: it names no secret.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(openAPISpec)
}
