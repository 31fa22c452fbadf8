package app_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
)

// fdsInto counts this process's descriptors that lead into dir, and its
// inotify instances.
func fdsInto(t *testing.T, dir string) (files, inotify int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed since the listing
		}
		switch {
		case strings.HasPrefix(l, dir+"/"):
			files++
		case l == "anon_inode:inotify":
			inotify++
		}
	}
	return files, inotify
}

// TestIdleFileTasksHoldNoDescriptors: the idle file tasks of a node hold no
// descriptor on their files (a source closes its file a few seconds after
// its last line, a sink opens its file for each batch), an append wakes
// each of them, and the node's one file watcher is gone once the node
// stops.
func TestIdleFileTasksHoldNoDescriptors(t *testing.T) {
	const n = 100
	dir := t.TempDir()
	_, inotifyBefore := fdsInto(t, dir)
	node := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	for i := range n {
		in := filepath.Join(dir, fmt.Sprintf("in%d.jsonl", i))
		if err := os.WriteFile(in, []byte("{\"ts\":1}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		node.OK(t, "POST", "/connector/task/v2/create", map[string]any{
			"component": fmt.Sprintf("idle-incr_trans-%d-0", i),
			"config": map[string]any{
				"source": map[string]string{"type": "file", "path": in},
				"sink":   map[string]string{"type": "file", "path": filepath.Join(dir, fmt.Sprintf("out%d.jsonl", i))},
			},
		})
	}
	delivered := func(want string) func() bool {
		return func() bool {
			for i := range n {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out%d.jsonl", i)))
				if string(b) != want {
					return false
				}
			}
			return true
		}
	}
	cmtest.Eventually(t, time.Minute, "every task copied its line", delivered("{\"ts\":1}\n"))
	idle := func() bool { files, _ := fdsInto(t, dir); return files == 0 }
	cmtest.Eventually(t, 30*time.Second, "idle tasks hold no descriptor on their files", idle)
	if _, inotify := fdsInto(t, dir); inotify != inotifyBefore+1 {
		t.Fatalf("%d inotify instances with the node running, want %d (one for the node)", inotify, inotifyBefore+1)
	}

	for i := range n {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("in%d.jsonl", i)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString("{\"ts\":2}\n")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	cmtest.Eventually(t, 30*time.Second, "every task copied the appended line", delivered("{\"ts\":1}\n{\"ts\":2}\n"))
	cmtest.Eventually(t, 30*time.Second, "idle again, tasks hold no descriptor on their files", idle)

	node.Stop()
	if _, inotify := fdsInto(t, dir); inotify != inotifyBefore {
		t.Fatalf("%d inotify instances after the node stopped, want %d", inotify, inotifyBefore)
	}
}
