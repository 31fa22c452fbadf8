package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/docs"
)

// OpenAPIPath serves docs/openapi.yaml, the OpenAPI document of every
// route but the pprof profiles. server/openapi_test.go holds it to the
// routes registered here and to the errCode catalogue.
const OpenAPIPath = "/openapi.yaml"

func openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", docs.OpenAPI)
}
