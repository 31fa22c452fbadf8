package kafkaconnect

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/model"
)

// builtinClasses are the connector classes every node has: the component
// types. A declared process plugin is a class too.
var builtinClasses = []string{string(model.TypeIncr), string(model.TypeFull)}

type pluginInfo struct {
	Class   string `json:"class"`
	Type    string `json:"type"`
	Version string `json:"version"`
}

func (h *handlers) classes() []string {
	return append(slices.Clone(builtinClasses), h.plugins()...)
}

func (h *handlers) isClass(class string) bool { return slices.Contains(h.classes(), class) }

// plugins lists the classes. cm has no converters or transforms, so
// connectorsOnly=false lists the same.
func (h *handlers) listPlugins(c echo.Context) error {
	if _, err := boolQuery(c, "connectorsOnly"); err != nil {
		return err
	}
	out := []pluginInfo{}
	for _, cl := range h.classes() {
		out = append(out, pluginInfo{Class: cl, Type: typeSource, Version: h.svc.Version})
	}
	return c.JSON(http.StatusOK, out)
}

// configKey is Kafka Connect's ConfigKeyInfo.
type configKey struct {
	Name          string   `json:"name"`
	Type          string   `json:"type"`
	Required      bool     `json:"required"`
	DefaultValue  *string  `json:"default_value"`
	Importance    string   `json:"importance"`
	Documentation string   `json:"documentation"`
	Group         string   `json:"group"`
	Order         int      `json:"order"`
	Width         string   `json:"width"`
	DisplayName   string   `json:"display_name"`
	Dependents    []string `json:"dependents"`
}

// definition is what a class's config is checked against: the keys
// Kafka Connect and cm's runner give a meaning to. Connector-specific keys
// (source.path, sink.dsn...) are checked by building the connectors
// (docs/connectors.md lists them).
func definition(class string, plugin bool) []configKey {
	key := func(name, group, doc string, required bool, order int) configKey {
		return configKey{Name: name, Type: "STRING", Required: required, Importance: "HIGH", Documentation: doc,
			Group: group, Order: order, Width: "MEDIUM", DisplayName: name, Dependents: []string{}}
	}
	out := []configKey{
		key(keyName, "Common", "The connector's name: its component id, PROJECT-TYPE-N-M.", true, 1),
		key(keyClass, "Common", "The component's type ("+strings.Join(builtinClasses, " or ")+") or a declared process plugin.", true, 2),
		key("source.type", "Source", "The source connector: file, mysql or process.", true, 3),
		key("source.checkpoint", "Source", "Where each subtopic starts, as {\"subtopic\":\"unix seconds\"}.", false, 4),
		key("sink.type", "Sink", "The sink connector: file or mysql; none for a source that moves data itself (process).", !plugin, 5),
	}
	if plugin {
		out = append(out, key("source.plugin", "Source", "The plugin the source runs: "+class+".", true, 6))
	}
	return out
}

func (h *handlers) pluginConfig(c echo.Context) error {
	class := c.Param("plugin")
	if !h.isClass(class) {
		return unknownClass(class)
	}
	return c.JSON(http.StatusOK, definition(class, !slices.Contains(builtinClasses, class)))
}

func unknownClass(class string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "UNKNOWN_PLUGIN",
		Message: fmt.Sprintf("Failed to find any class that implements Connector and which name matches %s (GET /connector-plugins lists them)", class)}
}

// configValue is Kafka Connect's ConfigValueInfo.
type configValue struct {
	Name              string   `json:"name"`
	Value             *string  `json:"value"`
	RecommendedValues []string `json:"recommended_values"`
	Errors            []string `json:"errors"`
	Visible           bool     `json:"visible"`
}

type configInfo struct {
	Definition configKey   `json:"definition"`
	Value      configValue `json:"value"`
}

type validation struct {
	Name       string       `json:"name"`
	ErrorCount int          `json:"error_count"`
	Groups     []string     `json:"groups"`
	Configs    []configInfo `json:"configs"`
}

// validate checks a config against its class's definition and by building
// its connectors, as a create would, and answers each key with its errors.
// It writes nothing.
func (h *handlers) validate(c echo.Context) error {
	class := c.Param("plugin")
	if !h.isClass(class) {
		return unknownClass(class)
	}
	var flat flatConfig
	if err := body(c, &flat, "Connector config must be sent as the request body"); err != nil {
		return err
	}
	plugin := !slices.Contains(builtinClasses, class)
	defs := definition(class, plugin)
	errs := map[string][]string{}
	add := func(key, msg string) { errs[key] = append(errs[key], msg) }
	for _, d := range defs {
		if v, ok := flat[d.Name]; d.Required && (!ok || v == nil || *v == "") {
			add(d.Name, "Missing required configuration \""+d.Name+"\" which has no default value.")
		}
	}
	if v := flat[keyClass]; v != nil && *v != class {
		add(keyClass, fmt.Sprintf("connector.class %q is not the class validated (%s)", *v, class))
	}
	name := ""
	if v := flat[keyName]; v != nil {
		name = *v
	}
	comp := name
	if err := component(name); err != nil {
		if name != "" {
			add(keyName, err.Error())
		}
		typ := class
		if plugin {
			typ = string(model.TypeIncr)
		}
		comp = "validate-" + typ + "-0-0"
	}
	if len(errs) == 0 {
		check := flat
		if name == "" || comp != name {
			check = flatConfig{}
			for k, v := range flat {
				if k != keyName {
					check[k] = v
				}
			}
		}
		cfg, err := scoped(comp, check, h.plugins())
		if err == nil {
			err = h.svc.Tasks.CheckConfig(comp, cfg)
		}
		if err != nil {
			add(blame(err.Error()), err.Error())
		}
	}
	out := validation{Name: class, Groups: []string{"Common", "Source", "Sink"}, Configs: []configInfo{}}
	seen := map[string]bool{}
	for _, d := range defs {
		seen[d.Name] = true
		out.Configs = append(out.Configs, configInfo{Definition: d, Value: valueOf(d.Name, flat, errs[d.Name])})
	}
	var rest []string
	for k := range flat {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		d := configKey{Name: k, Type: "STRING", Importance: "MEDIUM", Group: "Common", Width: "MEDIUM", DisplayName: k, Dependents: []string{}}
		out.Configs = append(out.Configs, configInfo{Definition: d, Value: valueOf(k, flat, errs[k])})
	}
	for _, e := range errs {
		out.ErrorCount += len(e)
	}
	return c.JSON(http.StatusOK, out)
}

// blame is the key a connector's refusal is about: the sink's when the
// message is about the sink, else the source's.
func blame(msg string) string {
	if i, j := strings.Index(msg, "sink"), strings.Index(msg, "source"); i >= 0 && (j < 0 || i < j) {
		return "sink.type"
	}
	return "source.type"
}

func valueOf(key string, flat flatConfig, errs []string) configValue {
	v := configValue{Name: key, RecommendedValues: []string{}, Errors: errs, Visible: true}
	if errs == nil {
		v.Errors = []string{}
	}
	if s := flat[key]; s != nil {
		masked := model.MaskValue(*s)
		if model.IsSecretKey(key) {
			masked = model.Masked
		}
		v.Value = &masked
	}
	return v
}

// reload rescans the plugin directory (admin only): the next create,
// config change or start of a process task sees the new set.
func (h *handlers) reload(c echo.Context) error {
	if h.svc.Plugins == nil {
		return &Error{Status: http.StatusConflict, Code: "ILLEGAL_STATE", Message: "this node has no plugin directory"}
	}
	if err := h.svc.Plugins.ReloadPlugins(); err != nil {
		return &Error{Status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Message: err.Error()}
	}
	return c.JSON(http.StatusOK, map[string][]string{"plugins": h.plugins()})
}
