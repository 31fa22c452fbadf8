package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/connector-manager/cm/model"
)

// fsImmutable is FS_IMMUTABLE_FL (linux/fs.h); FS_IOC_GETFLAGS and
// FS_IOC_SETFLAGS read and set it.
const (
	fsImmutable    = 0x10
	fsIocGetFlags  = 0x80086601
	fsIocSetFlags  = 0x40086602
	readOnlyReason = "is not writable by this process"
)

// readOnlyDir makes dir a directory this process cannot create files in:
// mode 0555, and immutable as well when the test runs as root (whom modes
// do not stop). The directory is made writable again when the test ends.
func readOnlyDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	if os.Geteuid() != 0 {
		return
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flags int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetFlags, uintptr(unsafe.Pointer(&flags))); e != 0 {
		t.Fatalf("reading the attributes of %s: %v", dir, e)
	}
	set := func(v int32) syscall.Errno {
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocSetFlags, uintptr(unsafe.Pointer(&v)))
		return e
	}
	if e := set(flags | fsImmutable); e != 0 {
		t.Fatalf("making %s immutable: %v", dir, e)
	}
	t.Cleanup(func() {
		g, err := os.Open(dir)
		if err != nil {
			t.Error(err)
			return
		}
		defer g.Close()
		v := flags
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, g.Fd(), fsIocSetFlags, uintptr(unsafe.Pointer(&v))); e != 0 {
			t.Errorf("clearing the immutable flag of %s: %v", dir, e)
		}
	})
}

// TestStartDirsSayWhatIsWrong: a data dir or SQLite directory cm cannot
// write in is refused before the store is opened, naming the flag, its
// environment variable and YAML key, and saying in words what is wrong
// (not SQLite's "out of memory (14)"). A missing directory is created.
func TestStartDirsSayWhatIsWrong(t *testing.T) {
	base := t.TempDir()
	ro := filepath.Join(base, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	readOnlyDir(t, ro)
	ok := filepath.Join(base, "ok")
	sqlite := func(p string) model.DSN {
		d, err := model.ParseDSN("sqlite:" + p)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, c := range []struct {
		name    string
		dataDir string
		db      model.DSN
		want    []string
	}{
		{"read-only data dir", ro, sqlite(filepath.Join(ok, "cm.db")),
			[]string{"--data-dir (env CM_DATA_DIR, YAML data-dir) " + ro, readOnlyReason}},
		{"data dir under a read-only dir", filepath.Join(ro, "data"), sqlite(filepath.Join(ok, "cm.db")),
			[]string{"--data-dir", filepath.Join(ro, "data") + " does not exist and cannot be created: " + ro + " " + readOnlyReason}},
		{"data dir is a file", file, sqlite(filepath.Join(ok, "cm.db")),
			[]string{"--data-dir", file + " is not a directory"}},
		{"data dir under a file", filepath.Join(file, "data"), sqlite(filepath.Join(ok, "cm.db")),
			[]string{"--data-dir", file + " is not a directory"}},
		{"sqlite in a read-only dir", ok, sqlite(filepath.Join(ro, "cm.db")),
			[]string{"--db (env CM_DB, YAML db) sqlite:" + filepath.Join(ro, "cm.db"), "the database's directory: " + ro + " " + readOnlyReason}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkStartDirs(c.dataDir, c.db)
			if err == nil {
				t.Fatalf("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "out of memory") {
				t.Errorf("error %q", err)
			}
		})
	}
	if err := checkStartDirs(filepath.Join(ok, "data", "deeper"), sqlite(filepath.Join(ok, "db", "cm.db"))); err != nil {
		t.Fatalf("missing directories under a writable one: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(ok, "data", "deeper")); err != nil || !fi.IsDir() {
		t.Fatalf("the data dir was not created: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(ok, "data", "deeper", ".cm-write-check-*"))
	if len(left) != 0 {
		t.Fatalf("the write check left %v", left)
	}
}

// TestServeRefusesReadOnlyDataDir runs cm serve on a read-only data dir:
// it exits before opening the store, with the message above.
func TestServeRefusesReadOnlyDataDir(t *testing.T) {
	base := t.TempDir()
	ro := filepath.Join(base, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(ro, "cm.db")
	readOnlyDir(t, ro)
	var c serveConfig
	cmd := serveCommand(&c)
	cmd.SetArgs([]string{"--listen", "127.0.0.1:18099", "--db", "sqlite:" + db, "--data-dir", ro})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--data-dir (env CM_DATA_DIR, YAML data-dir) "+ro) ||
		!strings.Contains(err.Error(), readOnlyReason) || !strings.Contains(err.Error(), "--db (env CM_DB, YAML db)") {
		t.Fatalf("cm serve on a read-only data dir: %v", err)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatalf("the store %s was created", db)
	}
}

// TestBadValuesNameTheirSource: a value that does not parse names the
// environment variable or YAML key it came from and what it must be.
func TestBadValuesNameTheirSource(t *testing.T) {
	var c serveConfig
	cmd := serveCommand(&c)
	env := map[string]string{"CM_RATE_BURST": "lots"}
	err := resolve(cmd, &c, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "env CM_RATE_BURST (--rate-burst)") || !strings.Contains(err.Error(), `"lots" is not a whole number`) {
		t.Errorf("CM_RATE_BURST=lots: %v", err)
	}
	file := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(file, []byte("lease-ttl: ten\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var d serveConfig
	cmd = serveCommand(&d)
	if err := cmd.Flags().Parse([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
	err = resolve(cmd, &d, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "YAML key lease-ttl") || !strings.Contains(err.Error(), `"ten" is not a duration`) {
		t.Errorf("lease-ttl: ten: %v", err)
	}
}
