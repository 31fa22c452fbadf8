package model

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// TaskType is the kind of component: incremental sync or full import.
type TaskType string

// Task types, as they appear in component names.
const (
	TypeIncr TaskType = "incr_trans"
	TypeFull TaskType = "full_trans"
)

// nameKind is the fixed middle part of every task name.
const nameKind = "connector_v2"

// VersionDigits is the width of the version in a task name.
const VersionDigits = 10

// MaxVersion is the largest version a task name can carry.
const MaxVersion = 9_999_999_999

var (
	componentRE = regexp.MustCompile(`^([A-Za-z0-9_]{1,64})-(incr_trans|full_trans)-(0|[1-9][0-9]{0,8})-(0|[1-9][0-9]{0,8})$`)
	hostRE      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	versionRE   = regexp.MustCompile(`^[0-9]{10}$`)
)

// Component is the stable identity of a task: PROJECT-TYPE-N-M.
type Component struct {
	Project string
	Type    TaskType
	N, M    int
}

// ParseComponent parses PROJECT-TYPE-N-M, e.g. p_493po-incr_trans-1-0.
func ParseComponent(s string) (Component, error) {
	m := componentRE.FindStringSubmatch(s)
	if m == nil {
		return Component{}, fmt.Errorf("%w: component %q is not PROJECT-TYPE-N-M (TYPE incr_trans or full_trans)", ErrInvalidName, s)
	}
	n, _ := strconv.Atoi(m[3])
	mm, _ := strconv.Atoi(m[4])
	return Component{Project: m[1], Type: TaskType(m[2]), N: n, M: mm}, nil
}

func (c Component) String() string {
	return fmt.Sprintf("%s-%s-%d-%d", c.Project, c.Type, c.N, c.M)
}

// NodeID is a node's identity, IP-PORT, e.g. 10.0.0.1-9000.
type NodeID string

// ParseNodeID validates HOST-PORT. HOST is an IP address or a DNS name.
func ParseNodeID(s string) (NodeID, error) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return "", fmt.Errorf("%w: node %q is not IP-PORT", ErrInvalidName, s)
	}
	host, port := s[:i], s[i+1:]
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return "", fmt.Errorf("%w: node %q has no valid port", ErrInvalidName, s)
	}
	if net.ParseIP(host) == nil && !hostRE.MatchString(host) {
		return "", fmt.Errorf("%w: node %q has no valid host", ErrInvalidName, s)
	}
	return NodeID(s), nil
}

// Host is the node's IP or host name.
func (n NodeID) Host() string {
	s := string(n)
	return s[:strings.LastIndexByte(s, '-')]
}

// NodeIDFromAddr derives a node id from a listen address, host:port -> host-port.
func NodeIDFromAddr(addr string) (NodeID, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: address %q: %v", ErrInvalidName, addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return ParseNodeID(host + "-" + port)
}

// TaskName is NODE:connector_v2:COMPONENT:VERSION, one incarnation of a component.
type TaskName struct {
	Node      NodeID
	Component Component
	Version   int64
}

// String formats the name; ParseTaskName(n.String()) == n.
func (n TaskName) String() string {
	return fmt.Sprintf("%s:%s:%s:%0*d", n.Node, nameKind, n.Component, VersionDigits, n.Version)
}

// TaskRef is what an API caller names: a full task name, or a bare component
// (COMPONENT or connector_v2:COMPONENT) meaning the current incarnation.
type TaskRef struct {
	Component Component
	// Name is set when the caller gave a full name; nil for a bare component.
	Name *TaskName
}

// ParseTaskName parses a full task name.
func ParseTaskName(s string) (TaskName, error) {
	ref, err := ParseTaskRef(s)
	if err != nil {
		return TaskName{}, err
	}
	if ref.Name == nil {
		return TaskName{}, fmt.Errorf("%w: %q is a component, not a full task name", ErrInvalidName, s)
	}
	return *ref.Name, nil
}

// ParseTaskRef parses a full task name or a bare component.
func ParseTaskRef(s string) (TaskRef, error) {
	if s == "" {
		return TaskRef{}, fmt.Errorf("%w: taskName is empty", ErrInvalidName)
	}
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 1:
		c, err := ParseComponent(parts[0])
		return TaskRef{Component: c}, err
	case 2:
		if parts[0] != nameKind {
			break
		}
		c, err := ParseComponent(parts[1])
		return TaskRef{Component: c}, err
	case 4:
		if parts[1] != nameKind {
			break
		}
		node, err := ParseNodeID(parts[0])
		if err != nil {
			return TaskRef{}, err
		}
		c, err := ParseComponent(parts[2])
		if err != nil {
			return TaskRef{}, err
		}
		if !versionRE.MatchString(parts[3]) {
			return TaskRef{}, fmt.Errorf("%w: version %q is not %d digits", ErrInvalidName, parts[3], VersionDigits)
		}
		v, _ := strconv.ParseInt(parts[3], 10, 64)
		if v < 1 {
			return TaskRef{}, fmt.Errorf("%w: version must be at least 1", ErrInvalidName)
		}
		return TaskRef{Component: c, Name: &TaskName{Node: node, Component: c, Version: v}}, nil
	}
	return TaskRef{}, fmt.Errorf("%w: %q is not NODE:connector_v2:COMPONENT:VERSION", ErrInvalidName, s)
}
