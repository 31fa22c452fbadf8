package process

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a fake connector: run as
// "<test binary> cm-fake-connector MODE" it speaks the protocol instead of
// running tests.
const fakeArg = "cm-fake-connector"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == fakeArg {
		os.Exit(fake(os.Args[2]))
	}
	// A fake connector built with -race would sleep a second before it
	// exits; the tests would only be slower for it.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

func fake(mode string) int {
	if mode == "ignoreterm" {
		signal.Ignore(syscall.SIGTERM)
	}
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "no handshake:", err)
		return 2
	}
	var hs struct {
		Task       string
		Type       string
		Config     map[string]map[string]string
		Checkpoint map[string]struct {
			TS    int64
			Token string
		}
	}
	if err := json.Unmarshal(line, &hs); err != nil {
		fmt.Fprintln(os.Stderr, "bad handshake:", err)
		return 2
	}
	say := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	stderrLines := func(n int) {
		for i := 1; i <= n; i++ {
			fmt.Fprintf(os.Stderr, "stderr line %d\n", i)
		}
	}
	switch mode {
	case "echo":
		// Answers each handshake checkpoint with the next one, so the test
		// sees what the handshake carried.
		if hs.Task == "" || hs.Task != os.Getenv("CM_TASK") || hs.Type != "incr_trans" || hs.Config["source"]["password"] != "s3cret" {
			say(`{"type":"error","code":"BAD_HANDSHAKE","message":%q}`, line)
		}
		say(`{"type":"heartbeat"}`)
		say(`this is not a message`)
		for sub, p := range hs.Checkpoint {
			say(`{"type":"checkpoint","subtopic":%q,"ts":%d,"token":%q}`, sub, p.TS+1, p.Token+"+1")
		}
		say(`{"type":"future","x":1}`)
		say(`{"type":"metrics","metrics":{"rows":10}}`)
		// Runs until cm closes stdin or sends SIGTERM; either way it ends.
		_, _ = io.Copy(io.Discard, in)
		return 0
	case "crash":
		stderrLines(25)
		say(`{"type":"checkpoint","subtopic":"s","ts":1,"token":"a"}`)
	case "exit3":
		stderrLines(25)
		return 3
	case "ignoreterm":
		say(`{"type":"checkpoint","subtopic":"s","ts":1,"token":"a"}`)
	case "error":
		fmt.Fprintln(os.Stderr, "connecting as reader")
		say(`{"type":"error","code":"SRC_DENIED","message":"access denied","reason":"no SELECT privilege","proposal":"grant it","permanent":true}`)
	case "done":
		say(`{"type":"checkpoint","subtopic":"a","ts":5,"token":"t5"}`)
		say(`{"type":"checkpoint","subtopic":"a","ts":6,"token":"t6"}`)
		say(`{"type":"checkpoint","subtopic":"b","ts":7,"token":"t7"}`)
		return 0
	case "garbage":
		for range 99 {
			say(`garbage`)
		}
		say(`{"type":"heartbeat"}`)
		for range 99 {
			say(`{"type":"checkpoint","ts":1}`)
		}
		say(`{"type":"checkpoint","subtopic":"s","ts":2,"token":"b"}`)
		for range 100 {
			say(`{"no":"type"}`)
		}
	case "caughtup":
		// An old checkpoint, and then word that everything is delivered.
		say(`{"type":"checkpoint","subtopic":"s","ts":100,"token":"a"}`)
		say(`{"type":"heartbeat","caughtUp":true}`)
	case "behind":
		say(`{"type":"checkpoint","subtopic":"s","ts":100,"token":"a"}`)
		say(`{"type":"heartbeat","delaySeconds":42}`)
	case "withdraw":
		say(`{"type":"heartbeat","caughtUp":true}`)
		say(`{"type":"heartbeat"}`)
		say(`{"type":"checkpoint","subtopic":"s","ts":100,"token":"a"}`)
	case "silent":
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		return 2
	}
	time.Sleep(time.Hour)
	return 0
}
