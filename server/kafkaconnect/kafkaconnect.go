// Package kafkaconnect serves the Kafka Connect REST API (3.9–4.1) over
// cm's tasks, beside the OMS API on the same Echo instance, with the same
// middleware and roles: a connector is a task, named by its component id.
// Its answers are Kafka Connect's shapes and status codes, its errors
// Kafka Connect's {"error_code","message"} body, and its 202 and 204
// answers carry no body and no content type (docs/kafka-connect.md).
//
// The handlers only translate: every call goes to the same use cases
// (taskmgr) and read side (taskmgr/view) as the OMS routes, so both APIs
// share one store, one transition table and one audit trail.
package kafkaconnect

import (
	"context"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/view"
)

// Tasks is what the paths need from the operator use cases.
type Tasks interface {
	Create(ctx context.Context, call taskmgr.Call, req taskmgr.CreateRequest) (string, error)
	Resume(ctx context.Context, call taskmgr.Call, ref string, opt taskmgr.ResumeOptions) (string, error)
	Stop(ctx context.Context, call taskmgr.Call, ref string, timeout time.Duration) (string, error)
	Pause(ctx context.Context, call taskmgr.Call, ref string, timeout time.Duration) (string, error)
	Delete(ctx context.Context, call taskmgr.Call, ref string, timeout time.Duration) (string, error)
	ReplaceConfig(ctx context.Context, call taskmgr.Call, ref string, cfg model.Config, timeout time.Duration) (string, error)
	Restart(ctx context.Context, call taskmgr.Call, ref string, onlyFailed bool, timeout time.Duration) (bool, error)
	AlterOffsets(ctx context.Context, call taskmgr.Call, ref string, target map[string]int64, force bool) (string, error)
	ResetOffsets(ctx context.Context, call taskmgr.Call, ref string) (string, error)
	CheckConfig(component string, cfg model.Config) error
}

// Reads is what the paths need from the read side.
type Reads interface {
	Detail(ctx context.Context, ref string) (*view.TaskView, error)
	List(ctx context.Context, q view.ListQuery) ([]view.TaskView, int64, error)
}

// Plugins are the process plugins of --plugin-dir.
type Plugins interface {
	PluginNames() []string
	ReloadPlugins() error
}

// Services are what the paths call. Caller and Allows come from the
// server the paths are mounted on.
type Services struct {
	Tasks   Tasks
	Reads   Reads
	Plugins Plugins
	// Level is the node's log level, which /admin/loggers reads and sets;
	// nil: the level is fixed, and a PUT is refused.
	Level *zap.AtomicLevel
	// Version is the build's version, GET / answers it.
	Version string
	// Ready answers GET /health: nil when the node takes traffic.
	Ready func(ctx context.Context) error
	// Caller describes the caller of a request for the audit log.
	Caller func(c echo.Context) taskmgr.Call
	// Allows says whether the caller of c has role (one of the server's
	// role names); a PUT config that would create a connector needs what
	// POST /connectors needs.
	Allows func(c echo.Context, role string) bool
}

// The paths, as Echo registers them. server/auth.go gives each its role.
const (
	PathRoot           = "/"
	PathHealth         = "/health"
	PathConnectors     = "/connectors"
	PathConnector      = "/connectors/:connector"
	PathConfig         = "/connectors/:connector/config"
	PathStatus         = "/connectors/:connector/status"
	PathTasks          = "/connectors/:connector/tasks"
	PathTaskStatus     = "/connectors/:connector/tasks/:task/status"
	PathTaskRestart    = "/connectors/:connector/tasks/:task/restart"
	PathPause          = "/connectors/:connector/pause"
	PathResume         = "/connectors/:connector/resume"
	PathStop           = "/connectors/:connector/stop"
	PathRestart        = "/connectors/:connector/restart"
	PathOffsets        = "/connectors/:connector/offsets"
	PathTopics         = "/connectors/:connector/topics"
	PathTopicsReset    = "/connectors/:connector/topics/reset"
	PathPlugins        = "/connector-plugins"
	PathPluginConfig   = "/connector-plugins/:plugin/config"
	PathPluginValidate = "/connector-plugins/:plugin/config/validate"
	PathPluginReload   = "/connector-plugins/reload"
	PathLoggers        = "/admin/loggers"
	PathLogger         = "/admin/loggers/:logger"
)

// CreateRole is the role a PUT config needs when it creates the connector
// (the role of POST /connectors and of the OMS create).
const CreateRole = "admin"

// Mount registers the paths on e.
func Mount(e *echo.Echo, svc Services) {
	h := &handlers{svc: svc}
	e.GET(PathRoot, h.root)
	e.GET(PathHealth, h.health)
	e.GET(PathConnectors, h.list)
	e.POST(PathConnectors, h.create)
	e.GET(PathConnector, h.info)
	e.DELETE(PathConnector, h.delete)
	e.GET(PathConfig, h.config)
	e.PUT(PathConfig, h.putConfig)
	e.PATCH(PathConfig, h.patchConfig)
	e.GET(PathStatus, h.status)
	e.GET(PathTasks, h.tasks)
	e.GET(PathTaskStatus, h.taskStatus)
	e.POST(PathTaskRestart, h.taskRestart)
	e.PUT(PathPause, h.pause)
	e.PUT(PathResume, h.resume)
	e.PUT(PathStop, h.stop)
	e.POST(PathRestart, h.restart)
	e.GET(PathOffsets, h.offsets)
	e.PATCH(PathOffsets, h.alterOffsets)
	e.DELETE(PathOffsets, h.resetOffsets)
	e.GET(PathTopics, h.topics)
	e.PUT(PathTopicsReset, h.resetTopics)
	e.GET(PathPlugins, h.listPlugins)
	e.GET(PathPluginConfig, h.pluginConfig)
	e.PUT(PathPluginValidate, h.validate)
	e.POST(PathPluginReload, h.reload)
	e.GET(PathLoggers, h.loggers)
	e.GET(PathLogger, h.logger)
	e.PUT(PathLogger, h.setLogger)
}

type handlers struct {
	svc Services
	// mu guards levelSet: when a PUT last set the log level (unix ms).
	mu       sync.Mutex
	levelSet *int64
}
