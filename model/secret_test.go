package model_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

func TestIsSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		"password": true, "PASSWORD": true, "db_password": true, "passwd": true, "pwd": true, "secret": true,
		"client_secret": true, "token": true, "accessToken": true, "credentials": true, "auth": true, "basic-auth": true,
		"private_key": true, "privateKey": true, "private.key": true, "api_key": true, "apiKey": true, "API-KEY": true,
		"aws_access_key": true, "ssl.passphrase": true,
		"host": false, "port": false, "user": false, "checkpoint": false, "type": false, "path": false, "dsn": false,
		"key": false, "tables": false,
	} {
		if got := model.IsSecretKey(k); got != want {
			t.Errorf("IsSecretKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestMaskValue(t *testing.T) {
	for in, want := range map[string]string{
		"mysql://u:s3cr3t@h:3306/db":                                   "mysql://u:******@h:3306/db",
		"mysql://u:p@ss@h/db?x=1":                                      "mysql://u:******@h/db?x=1",
		"mysql://u@h/db":                                               "mysql://u@h/db",
		"mysql://h/db":                                                 "mysql://h/db",
		"u:s3cr3t@tcp(127.0.0.1:3306)/db":                              "u:******@tcp(127.0.0.1:3306)/db",
		"u:s3cr3t@unix(/run/m.sock)/db":                                "u:******@unix(/run/m.sock)/db",
		"u:s3cr3t@/db":                                                 "u:******@/db",
		"host=h user=u password=s3cr3t dbname=d":                       "host=h user=u password=****** dbname=d",
		"https://h/x?token=abcdef&a=1":                                 "https://h/x?token=******&a=1",
		`{"user":"u","password":"s3cr3t"}`:                             `{"password":"******","user":"u"}`,
		`{"a":{"apiKey":"k1k1k1"},"b":[{"dsn":"mysql://u:pw12@h/d"}]}`: `{"a":{"apiKey":"******"},"b":[{"dsn":"mysql://u:******@h/d"}]}`,
		`{"user":"u","port":3306}`:                                     `{"user":"u","port":3306}`,
		"mysql://u:${env:DB_PW}@h/db":                                  "mysql://u:${env:DB_PW}@h/db",
		"plain text, a time 12:30@noon":                                "plain text, a time 12:30@noon",
		"/var/data/in.jsonl":                                           "/var/data/in.jsonl",
		`{"mysql-bin.000001":123}`:                                     `{"mysql-bin.000001":123}`,
		"dial tcp 127.0.0.1:1: connect: refused":                       "dial tcp 127.0.0.1:1: connect: refused",
	} {
		if got := model.MaskValue(in); got != want {
			t.Errorf("MaskValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigMaskedAndSecrets(t *testing.T) {
	c := model.Config{"source": {
		"password": "pw-one", "host": "h", "dsn": "mysql://u:pw-two@h/db", "auth": "${env:AUTH}",
		"extra": `{"token":"pw-three"}`, "empty_secret": "",
	}}
	m := c.Masked()
	for k, want := range map[string]string{
		"password": model.Masked, "host": "h", "dsn": "mysql://u:******@h/db", "auth": "${env:AUTH}",
		"extra": `{"token":"******"}`, "empty_secret": "",
	} {
		if m["source"][k] != want {
			t.Errorf("Masked source.%s = %q, want %q", k, m["source"][k], want)
		}
	}
	if c["source"]["password"] != "pw-one" {
		t.Error("Masked changed its receiver")
	}
	got := strings.Join(sorted(c.Secrets()), ",")
	if got != "pw-one,pw-three,pw-two" {
		t.Errorf("Secrets = %s", got)
	}
	p := model.MaskParams(map[string]string{"taskName": "n", "token": "abcd", "dsn": "u:pw12@tcp(h)/d"})
	if p["taskName"] != "n" || p["token"] != model.Masked || p["dsn"] != "u:******@tcp(h)/d" {
		t.Errorf("MaskParams = %v", p)
	}
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestUnmask(t *testing.T) {
	stored := model.Config{"source": {
		"password": "pw-one", "dsn": "mysql://u:pw-two@h/db", "extra": `{"token":"pw-three","n":1}`,
		"go": "u:pw-four@tcp(h:1)/db",
	}}
	patch := model.Config{"source": {
		"password": model.Masked,                     // the mask back
		"dsn":      "mysql://u:******@other:3307/db", // a new host, the password kept
		"extra":    `{"token":"******","n":2}`,       // a JSON value edited, its secret kept
		"go":       stored.Masked()["source"]["go"],  // sent back as shown
		"new":      "mysql://v:fresh-pw@h/db",        // a real value is taken as given
	}}
	got, err := patch.Unmask(stored)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"password": "pw-one", "dsn": "mysql://u:pw-two@other:3307/db", "extra": `{"n":2,"token":"pw-three"}`,
		"go": "u:pw-four@tcp(h:1)/db", "new": "mysql://v:fresh-pw@h/db",
	} {
		if got["source"][k] != want {
			t.Errorf("Unmask source.%s = %q, want %q", k, got["source"][k], want)
		}
	}
	// A mask that stands for nothing stored is refused, never stored.
	for _, bad := range []model.Config{
		{"sink": {"password": model.Masked}},
		{"source": {"dsn2": "mysql://u:******@h/db"}},
		{"source": {"extra2": `{"secret":"******"}`}},
	} {
		if _, err := bad.Unmask(stored); !errors.Is(err, model.ErrInvalidArgument) {
			t.Errorf("Unmask(%v) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestScrubber(t *testing.T) {
	s := model.ScrubberOf(model.Config{"source": {"password": "hunter2-x", "dsn": "mysql://u:p%40ss-y@h/db"}}, "resolved-z")
	for in, want := range map[string]string{
		"Error 1045: Access denied for user 'u' (using password: YES) hunter2-x": "Error 1045: Access denied for user 'u' (using password: ******) ******",
		"dial mysql://u:p%40ss-y@h/db: refused":                                  "dial mysql://u:******@h/db: refused",
		"connecting with p@ss-y and resolved-z":                                  "connecting with ****** and ******",
		"u:anything@tcp(127.0.0.1:1)/db refused":                                 "u:******@tcp(127.0.0.1:1)/db refused",
		"nothing secret here":                                                    "nothing secret here",
	} {
		if got := s.String(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
	ds := s.Details([]model.ErrorDetail{{Message: "m hunter2-x", Reason: "r resolved-z", Stderr: []string{"line hunter2-x"}}})
	if strings.Contains(ds[0].Message+ds[0].Reason+strings.Join(ds[0].Stderr, ""), "hunter2") ||
		strings.Contains(ds[0].Reason, "resolved-z") {
		t.Errorf("Details = %+v", ds[0])
	}
	var none *model.Scrubber
	if got := none.String("password=abc123"); got != "password=******" {
		t.Errorf("nil scrubber: %q", got)
	}
}

type fakeResolver struct {
	env   map[string]string
	files map[string]string
}

func (f fakeResolver) LookupEnv(n string) (string, bool) { v, ok := f.env[n]; return v, ok }
func (f fakeResolver) ReadFile(p string) ([]byte, error) {
	if v, ok := f.files[p]; ok {
		return []byte(v), nil
	}
	return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
}

func TestReferences(t *testing.T) {
	c := model.Config{"source": {
		"password": "${env:DB_PW}", "dsn": "mysql://u:${file:/run/s/pw}@h:${env:PORT}/db", "host": "h",
	}}
	if err := c.CheckReferences(); err != nil {
		t.Fatal(err)
	}
	if p := c.WithPlaceholders(); p["source"]["dsn"] != "mysql://u:1@h:1/db" || p["source"]["password"] != "1" {
		t.Errorf("WithPlaceholders = %v", p)
	}
	r := fakeResolver{env: map[string]string{"DB_PW": "env-secret", "PORT": "3306"}, files: map[string]string{"/run/s/pw": "file-secret\n"}}
	got, resolved, err := c.ResolveReferences(r)
	if err != nil {
		t.Fatal(err)
	}
	if got["source"]["password"] != "env-secret" || got["source"]["dsn"] != "mysql://u:file-secret@h:3306/db" || got["source"]["host"] != "h" {
		t.Errorf("resolved = %v", got)
	}
	if strings.Join(sorted(resolved), ",") != "3306,env-secret,file-secret" {
		t.Errorf("resolved secrets = %v", resolved)
	}
	if c["source"]["password"] != "${env:DB_PW}" {
		t.Error("ResolveReferences changed its receiver")
	}
	// Missing: the error names the reference, not a value.
	_, _, err = model.Config{"sink": {"password": "${env:NOPE}"}}.ResolveReferences(r)
	if !errors.Is(err, model.ErrSecretUnresolved) || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("missing env: %v", err)
	}
	_, _, err = model.Config{"sink": {"password": "${file:/run/s/none}"}}.ResolveReferences(r)
	if !errors.Is(err, model.ErrSecretUnresolved) || !strings.Contains(err.Error(), "/run/s/none") {
		t.Errorf("missing file: %v", err)
	}
	for _, bad := range []string{"${env:}", "${env:A-B}", "${file:relative/p}", "${file:/a/../b}"} {
		if err := (model.Config{"s": {"k": bad}}).CheckReferences(); !errors.Is(err, model.ErrInvalidArgument) {
			t.Errorf("CheckReferences(%q) = %v", bad, err)
		}
	}
	// The masks shown for a reference are the reference itself.
	if m := c.Masked(); m["source"]["password"] != "${env:DB_PW}" {
		t.Errorf("a reference is shown as written: %v", m)
	}
}

// TestSQLiteSecureDelete: a secret updated away does not linger in the
// SQLite file once the WAL is checkpointed.
func TestSQLiteSecureDelete(t *testing.T) {
	ctx := context.Background()
	url := dbtest.SQLiteURL(t)
	s := open(t, url)
	marker := "MARKER-secure-delete-" + strings.Repeat("q", 64)
	task := newTask("p-incr_trans-1-0")
	task.SetConfig(model.Config{"sink": {"type": "file", "password": marker}})
	if err := s.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertAudit(ctx, &model.Audit{Actor: "t", Operation: "update", Component: task.Component,
		Result: model.ResultSuccess, Detail: `{"note":"` + marker + `"}`}); err != nil {
		t.Fatal(err)
	}
	cur, err := s.GetTask(ctx, task.Component)
	if err != nil {
		t.Fatal(err)
	}
	cur.SetConfig(model.Config{"sink": {"type": "file", "password": "replaced"}})
	if err := s.UpdateTask(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec("DELETE FROM operation_audit_log").Error; err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error; err != nil {
		t.Fatal(err)
	}
	dsn, err := model.ParseDSN(url)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(dsn.Path + "*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no database files at %s: %v", dsn.Path, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("MARKER-secure-delete")) {
			t.Errorf("%s still holds the superseded secret", filepath.Base(f))
		}
	}
}
