package kafkaconnect

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap/zapcore"
)

// APIVersion is the Kafka Connect REST API level these paths serve; GET /
// answers it as the version, so clients that turn features on by version
// (stop, offsets) find them, and cm's own build version as the commit.
const APIVersion = "3.9.0"

// clusterID is what GET / answers as kafka_cluster_id: cm runs without
// Kafka, and the nodes sharing a store are one cluster.
const clusterID = "cm"

func (h *handlers) root(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"version": APIVersion, "commit": h.svc.Version, "kafka_cluster_id": clusterID})
}

// healthTimeout is Kafka Connect's own bound on a health check.
const healthTimeout = 10 * time.Second

func (h *handlers) health(c echo.Context) error {
	if h.svc.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), healthTimeout)
		defer cancel()
		if err := h.svc.Ready(ctx); err != nil {
			// A caller that went away (a malformed body closes the
			// connection) says nothing about the node.
			status := http.StatusInternalServerError
			if c.Request().Context().Err() != nil {
				status = http.StatusServiceUnavailable
			}
			return c.JSON(status, map[string]string{"status": "unhealthy", "message": err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."})
}

// rootLogger is the one logger cm has a level for: every package's logger
// is a child of the node's, at the node's level.
const rootLogger = "root"

// loggerLevel is one entry of /admin/loggers; last_modified is unix
// milliseconds of the last PUT, null before any.
type loggerLevel struct {
	Level        string `json:"level"`
	LastModified *int64 `json:"last_modified"`
}

// kcLevel names a zap level in Kafka Connect's (log4j's) words.
func kcLevel(l zapcore.Level) string {
	switch l {
	case zapcore.DebugLevel:
		return "DEBUG"
	case zapcore.InfoLevel:
		return "INFO"
	case zapcore.WarnLevel:
		return "WARN"
	case zapcore.ErrorLevel:
		return "ERROR"
	case zapcore.DPanicLevel, zapcore.PanicLevel, zapcore.FatalLevel, zapcore.InvalidLevel:
		return "FATAL"
	default:
		return "FATAL"
	}
}

// zapLevel reads a log4j level; TRACE is zap's DEBUG and OFF its FATAL,
// the nearest levels it has.
func zapLevel(s string) (zapcore.Level, bool) {
	switch strings.ToUpper(s) {
	case "TRACE", "DEBUG":
		return zapcore.DebugLevel, true
	case "INFO":
		return zapcore.InfoLevel, true
	case "WARN":
		return zapcore.WarnLevel, true
	case "ERROR":
		return zapcore.ErrorLevel, true
	case "FATAL", "OFF":
		return zapcore.FatalLevel, true
	}
	return 0, false
}

func (h *handlers) level() loggerLevel {
	h.mu.Lock()
	at := h.levelSet
	h.mu.Unlock()
	l := zapcore.InfoLevel
	if h.svc.Level != nil {
		l = h.svc.Level.Level()
	}
	return loggerLevel{Level: kcLevel(l), LastModified: at}
}

func (h *handlers) loggers(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]loggerLevel{rootLogger: h.level()})
}

func loggerNotFound(name string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "Logger " + name + " not found (cm has one level, for the logger root)"}
}

func (h *handlers) logger(c echo.Context) error {
	if name := c.Param("logger"); name != rootLogger {
		return loggerNotFound(name)
	}
	return c.JSON(http.StatusOK, h.level())
}

func (h *handlers) setLogger(c echo.Context) error {
	name := c.Param("logger")
	var req struct {
		Level *string `json:"level"`
	}
	if err := body(c, &req, "The request body must give the level: {\"level\": \"DEBUG\"}"); err != nil {
		return err
	}
	if req.Level == nil || *req.Level == "" {
		return badRequest("Desired 'level' parameter was not specified in request.")
	}
	l, ok := zapLevel(*req.Level)
	if !ok {
		return &Error{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "invalid log level '" + *req.Level + "'."}
	}
	if name != rootLogger {
		return loggerNotFound(name)
	}
	scope := strings.ToLower(c.QueryParam("scope"))
	if scope != "" && scope != "worker" && scope != "cluster" {
		return badRequest("scope " + c.QueryParam("scope") + ": must be worker or cluster")
	}
	if h.svc.Level == nil {
		return &Error{Status: http.StatusConflict, Code: "ILLEGAL_STATE", Message: "this node's log level is fixed at start (--log-level)"}
	}
	h.svc.Level.SetLevel(l)
	now := time.Now().UnixMilli()
	h.mu.Lock()
	h.levelSet = &now
	h.mu.Unlock()
	if scope == "cluster" {
		return c.NoContent(http.StatusNoContent)
	}
	return c.JSON(http.StatusOK, []string{rootLogger})
}
