package server

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/connector-manager/cm/checkpoint"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr"
	"github.com/connector-manager/cm/taskmgr/cluster"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err       error
		status    int
		code      string
		retryable bool
	}{
		{&taskmgr.SupersededError{Given: "a", Current: "b"}, 409, "TASK_SUPERSEDED", false},
		{&model.IllegalTransitionError{From: model.StateRunning, Op: "update"}, 409, "ILLEGAL_STATE", false},
		{fmt.Errorf("x: %w", taskmgr.ErrBusy), 409, "TASK_BUSY", true},
		{model.ErrConflict, 409, "TASK_BUSY", true},
		{&taskmgr.FailedError{Task: "t"}, 409, "TASK_EXCEPTION", false},
		{fmt.Errorf("x: %w", taskmgr.ErrSkipDDL), 409, "DDL_SKIP_REFUSED", false},
		{fmt.Errorf("x: %w", taskmgr.ErrRewindUnsafe), 409, "PULLBACK_UNSAFE", false},
		{&taskmgr.RolledBackError{Task: "t", Code: "MIGRATE_ROLLED_BACK", Reason: "target failed"}, 409, "OPERATION_ROLLED_BACK", false},
		{taskmgr.ErrStopTimeout, 504, "STOP_TIMEOUT", true},
		{taskmgr.ErrStartTimeout, 504, "START_TIMEOUT", true},
		{taskmgr.ErrPauseTimeout, 504, "PAUSE_TIMEOUT", true},
		{taskmgr.ErrOperationTimeout, 504, "OPERATION_TIMEOUT", true},
		{cluster.ErrNodeNotFound, 404, "NODE_NOT_FOUND", false},
		{taskmgr.ErrTaskNotFound, 404, "TASK_NOT_FOUND", false},
		{taskmgr.ErrTaskExists, 409, "TASK_EXISTS", false},
		{fmt.Errorf("%w: source.command is not accepted", taskmgr.ErrCommandRefused), 400, "PROCESS_COMMAND_REFUSED", false},
		{fmt.Errorf("%w: source.plugin \"x\" is not declared", taskmgr.ErrUnknownPlugin), 400, "UNKNOWN_PLUGIN", false},
		{fmt.Errorf("%w: /etc/hostname", taskmgr.ErrOutsideRoots), 400, "FILE_OUTSIDE_ROOTS", false},
		{taskmgr.ErrInvalidConfig, 400, "INVALID_CONFIG", false},
		{model.ErrInvalidName, 400, "INVALID_TASK_NAME", false},
		{checkpoint.ErrTimeUnit, 400, "CHECKPOINT_TIME_UNIT", false},
		{checkpoint.ErrInFuture, 400, "CHECKPOINT_IN_FUTURE", false},
		{checkpoint.ErrUnknownSubtopic, 400, "UNKNOWN_SUBTOPIC", false},
		{checkpoint.ErrForward, 409, "CHECKPOINT_FORWARD", false},
		{&checkpoint.OutOfRangeError{Subtopic: "s", Requested: 1, Oldest: 2}, 409, "CHECKPOINT_OUT_OF_RANGE", false},
		{checkpoint.ErrInvalid, 400, "INVALID_CHECKPOINT", false},
		{errBadJSON, 400, "INVALID_JSON", false},
		{fmt.Errorf("%w: unexpected EOF", errBadBody), 400, "INVALID_BODY", false},
		{fmt.Errorf("%w: i/o timeout", errBodyTimeout), 408, "REQUEST_TIMEOUT", false},
		{fmt.Errorf("%w: send Authorization: Bearer <token>", errUnauthenticated), 401, "UNAUTHENTICATED", false},
		{fmt.Errorf("%w: token t has role viewer", errForbidden), 403, "FORBIDDEN", false},
		{fmt.Errorf("%w: at most 50 per second", errRateLimited), 429, "RATE_LIMITED", true},
		{fmt.Errorf("%w: first sent to stop", errKeyReused), 422, "IDEMPOTENCY_KEY_REUSED", false},
		{model.ErrInvalidArgument, 400, "INVALID_ARGUMENT", false},
		{model.ErrFenced, 409, "TASK_SUPERSEDED", false},
		{model.ErrNotFound, 404, "NOT_FOUND", false},
		{model.ErrAlreadyExists, 409, "ALREADY_EXISTS", false},
		{errors.Join(model.ErrUnavailable, errors.New("dial")), 503, "STORE_UNAVAILABLE", true},
		{context.DeadlineExceeded, 504, "TIMEOUT", true},
		{context.Canceled, 503, "CANCELED", true},
		{echo.NewHTTPError(http.StatusRequestEntityTooLarge), 413, "REQUEST_TOO_LARGE", false},
		{echo.ErrMethodNotAllowed, 405, "METHOD_NOT_ALLOWED", false},
		{echo.ErrNotFound, 404, "NOT_FOUND", false},
		{errors.New("surprise"), 500, "INTERNAL_ERROR", true},
	}
	for _, c := range cases {
		p := Classify(c.err)
		if p.Status != c.status || p.Code != c.code || p.Retryable != c.retryable {
			t.Errorf("Classify(%v) = %+v, want %d %s %v", c.err, p, c.status, c.code, c.retryable)
		}
	}
}

// TestEveryRuleIsNot500: no known category answers 500.
func TestEveryRuleIsNot500(t *testing.T) {
	for i, r := range catalogue {
		if r.problem.Status >= 500 && r.problem.Status != http.StatusServiceUnavailable && r.problem.Status != http.StatusGatewayTimeout {
			t.Errorf("rule %d (%s) answers %d", i, r.problem.Code, r.problem.Status)
		}
		if r.problem.Status >= 500 && !r.problem.Retryable {
			t.Errorf("rule %d (%s): a server-side status must be retryable", i, r.problem.Code)
		}
	}
}

// TestUnhealthyIsNotACallError: the health endpoint's code is its own.
func TestUnhealthyIsNotACallError(t *testing.T) {
	for _, r := range catalogue {
		if r.problem.Code == errUnhealthy {
			t.Fatalf("catalogue rule answers %s", errUnhealthy)
		}
	}
}

// exportedErrors is every exported error of the packages whose errors
// reach the API, by "package.Name" with the package's directory in the
// module, so a new one is found without anyone listing it. Keep a value of
// each here: the test fails on a name it finds and this table lacks, and
// on an entry that is no longer an exported error of its package.
var exportedErrors = map[string]error{
	"model.ErrNotFound":            model.ErrNotFound,
	"model.ErrAlreadyExists":       model.ErrAlreadyExists,
	"model.ErrConflict":            model.ErrConflict,
	"model.ErrInvalidArgument":     model.ErrInvalidArgument,
	"model.ErrUnavailable":         model.ErrUnavailable,
	"model.ErrInvalidName":         model.ErrInvalidName,
	"model.ErrFenced":              model.ErrFenced,
	"model.IllegalTransitionError": &model.IllegalTransitionError{From: model.StateRunning, Op: "update"},

	"checkpoint.ErrInvalid":         checkpoint.ErrInvalid,
	"checkpoint.ErrTimeUnit":        checkpoint.ErrTimeUnit,
	"checkpoint.ErrInFuture":        checkpoint.ErrInFuture,
	"checkpoint.ErrUnknownSubtopic": checkpoint.ErrUnknownSubtopic,
	"checkpoint.ErrForward":         checkpoint.ErrForward,
	"checkpoint.ErrOutOfRange":      checkpoint.ErrOutOfRange,
	"checkpoint.OutOfRangeError":    &checkpoint.OutOfRangeError{Subtopic: "s", Requested: 1, Oldest: 2},

	"taskmgr.ErrBusy":             taskmgr.ErrBusy,
	"taskmgr.ErrStopTimeout":      taskmgr.ErrStopTimeout,
	"taskmgr.ErrStartTimeout":     taskmgr.ErrStartTimeout,
	"taskmgr.ErrPauseTimeout":     taskmgr.ErrPauseTimeout,
	"taskmgr.ErrOperationTimeout": taskmgr.ErrOperationTimeout,
	"taskmgr.ErrRolledBack":       taskmgr.ErrRolledBack,
	"taskmgr.ErrSkipDDL":          taskmgr.ErrSkipDDL,
	"taskmgr.ErrRewindUnsafe":     taskmgr.ErrRewindUnsafe,
	"taskmgr.ErrTaskFailed":       taskmgr.ErrTaskFailed,
	"taskmgr.ErrInvalidConfig":    taskmgr.ErrInvalidConfig,
	"taskmgr.ErrCommandRefused":   taskmgr.ErrCommandRefused,
	"taskmgr.ErrUnknownPlugin":    taskmgr.ErrUnknownPlugin,
	"taskmgr.ErrOutsideRoots":     taskmgr.ErrOutsideRoots,
	"taskmgr.ErrTaskNotFound":     taskmgr.ErrTaskNotFound,
	"taskmgr.ErrTaskExists":       taskmgr.ErrTaskExists,
	"taskmgr.SupersededError":     &taskmgr.SupersededError{Given: "a", Current: "b"},
	"taskmgr.FailedError":         &taskmgr.FailedError{Task: "t"},
	"taskmgr.RolledBackError":     &taskmgr.RolledBackError{Task: "t", Code: "MIGRATE_ROLLED_BACK", Reason: "target failed"},

	"taskmgr/cluster.ErrNodeNotFound": cluster.ErrNodeNotFound,
	"taskmgr/cluster.NodeHeldError":   &cluster.NodeHeldError{Node: "127.0.0.1-1"},
}

// errorPackages are the directories, from the module root, whose packages'
// errors reach the API: model, checkpoint, and taskmgr with every package
// under it but the connectors (their errors reach the API as a task's
// error details, not as a call's answer).
var errorPackages, skipPackages = []string{"model", "checkpoint", "taskmgr"}, []string{"taskmgr/connector"}

// findExportedErrors reads the source of the errorPackages and returns
// their exported errors: package-level variables named Err..., declared
// error or set from errors.New or fmt.Errorf, and exported types with an
// Error() string method.
func findExportedErrors(t *testing.T) []string {
	t.Helper()
	const root = ".." // the test runs in server/
	var found []string
	for _, top := range errorPackages {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if d.Name() == "testdata" || slices.Contains(skipPackages, rel) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			for _, name := range errorsDeclared(f) {
				found = append(found, filepath.ToSlash(filepath.Dir(rel))+"."+name)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(found)
	return slices.Compact(found)
}

// errorsDeclared lists the exported errors one file declares.
func errorsDeclared(f *ast.File) []string {
	var names []string
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.GenDecl:
			if d.Tok != token.VAR {
				continue
			}
			for _, spec := range d.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !id.IsExported() {
						continue
					}
					isError := strings.HasPrefix(id.Name, "Err") || isIdent(vs.Type, "error")
					if i < len(vs.Values) {
						isError = isError || isCall(vs.Values[i], "errors", "New") || isCall(vs.Values[i], "fmt", "Errorf")
					}
					if isError {
						names = append(names, id.Name)
					}
				}
			}
		case *ast.FuncDecl:
			// func (e *T) Error() string
			if d.Recv == nil || len(d.Recv.List) != 1 || d.Name.Name != "Error" ||
				d.Type.Params.NumFields() != 0 || d.Type.Results.NumFields() != 1 || !isIdent(d.Type.Results.List[0].Type, "string") {
				continue
			}
			recv := d.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			if id, ok := recv.(*ast.Ident); ok && id.IsExported() {
				names = append(names, id.Name)
			}
		}
	}
	return names
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func isCall(e ast.Expr, pkg, fn string) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && isIdent(sel.X, pkg) && sel.Sel.Name == fn
}

// TestEveryExportedErrorIsAnswered: every exported error of the packages
// behind the API, found in their source rather than in the catalogue, is
// answered by a rule of its own, bare or wrapped: not 500 INTERNAL_ERROR,
// and retryable when the status says the server side failed.
func TestEveryExportedErrorIsAnswered(t *testing.T) {
	found := findExportedErrors(t)
	t.Logf("%d exported errors in %s (but %s)", len(found), strings.Join(errorPackages, ", "), strings.Join(skipPackages, ", "))
	for _, name := range found {
		err, ok := exportedErrors[name]
		if !ok {
			t.Errorf("%s is an exported error this test does not know: add it to exportedErrors in server/errors_test.go, "+
				"and give it a rule in catalogue in server/errors.go (with its errCode in docs/api.md), or Classify answers 500 INTERNAL_ERROR for it", name)
			continue
		}
		for _, e := range []error{err, fmt.Errorf("handler: %w", err)} {
			p := Classify(e)
			switch {
			case p.Status == http.StatusInternalServerError || p.Code == internalProblem.Code:
				t.Errorf("Classify(%s) = %+v: give %s a rule in catalogue in server/errors.go", name, p, name)
			case p.Status >= 500 && (p.Status != http.StatusServiceUnavailable && p.Status != http.StatusGatewayTimeout || !p.Retryable):
				t.Errorf("Classify(%s) = %+v: a server-side answer is 503 or 504, and retryable", name, p)
			}
		}
	}
	for name := range exportedErrors {
		if !slices.Contains(found, name) {
			t.Errorf("exportedErrors lists %s, which the source of %s does not declare as an exported error: moved or renamed? update the table",
				name, strings.Join(errorPackages, ", "))
		}
	}
}
