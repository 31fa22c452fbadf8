package process

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string // "" = accepted; else a part of the error
	}{
		{"full", "name: counter\ncommand: [\"/bin/sh\", \"/opt/cm/counter.sh\"]\nenv: [LANG]\nworkdir: /opt/cm\n", ""},
		{"minimal", "name: c\ncommand: [/bin/true]\n", ""},
		{"empty", "", "empty"},
		{"no name", "command: [/bin/true]\n", "name"},
		{"bad name", "name: Counter Two\ncommand: [/bin/true]\n", "name"},
		{"no command", "name: c\n", "command is required"},
		{"relative program", "name: c\ncommand: [sh, -c, x]\n", "absolute"},
		{"command as a string", "name: c\ncommand: /bin/true\n", "cannot unmarshal"},
		{"unknown key", "name: c\ncommand: [/bin/true]\nenvs: [LANG]\n", "envs"},
		{"bad env name", "name: c\ncommand: [/bin/true]\nenv: [\"A=B\"]\n", "env"},
		{"CM_TASK", "name: c\ncommand: [/bin/true]\nenv: [CM_TASK]\n", "CM_TASK"},
		{"relative workdir", "name: c\ncommand: [/bin/true]\nworkdir: data\n", "workdir"},
		{"two documents", "name: c\ncommand: [/bin/true]\n---\nname: d\ncommand: [/bin/true]\n", "one plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseManifest([]byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ParseManifest = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ParseManifest = %+v, %v; want an error about %q", p, err, tc.want)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	write := func(dir, name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	write(dir, "a.yaml", "name: a\ncommand: [/bin/true]\n")
	write(dir, "b.yaml", "name: b\ncommand: [/bin/sh, -c, 'exit 0']\nenv: [LANG]\n")
	write(dir, "notes.txt", "not a manifest")
	p, err := LoadPlugins(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Names(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("plugins %v", got)
	}

	// A broken manifest refuses the reload, naming its file, and leaves the set.
	write(dir, "c.yaml", "name: c\ncommand: [true]\n")
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "c.yaml")) {
		t.Fatalf("Reload = %v, want it refused naming c.yaml", err)
	}
	if _, err := LoadPlugins(dir, nil); err == nil {
		t.Fatal("LoadPlugins accepted a broken manifest")
	}
	if got := p.Names(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("after a refused reload: %v", got)
	}
	write(dir, "c.yaml", "name: a\ncommand: [/bin/false]\n")
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), "already declared by "+filepath.Join(dir, "a.yaml")) {
		t.Fatalf("Reload = %v, want the duplicate refused", err)
	}
	write(dir, "c.yaml", "name: c\ncommand: [/bin/false]\n")
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if c, ok := p.Lookup("c"); !ok || c.Command[0] != "/bin/false" {
		t.Fatalf("Lookup(c) = %+v, %v", c, ok)
	}
	if _, err := LoadPlugins(filepath.Join(dir, "missing"), nil); err == nil {
		t.Fatal("LoadPlugins accepted a missing directory")
	}
}
