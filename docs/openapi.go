// Package docs holds the documents the cm binary serves: the OpenAPI
// document of its HTTP API (openapi.yaml, served at GET /openapi.yaml).
// The prose reference beside it is api.md.
package docs

import _ "embed"

// OpenAPI is openapi.yaml as it is in this directory.
//
//go:embed openapi.yaml
var OpenAPI []byte
