package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/connector-manager/cm/internal/app"
	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
)

// mark is the prefix of every marker secret of TestSecretsStaySecret:
// finding it anywhere but where a runner receives its config is a leak.
const mark = "SECRETMARK"

func marker(name string) string { return mark + "-" + name + "-7f3a" }

// refusedPort is a loopback port nothing listens on.
func refusedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// TestSecretsStaySecret is the acceptance test of the secrets rules
// (docs/security.md, "Secrets"): tasks whose configs carry marker secrets
// in every form (secret key names of every kind, URL and DSN passwords, a
// JSON value, ${env:} and ${file:} references), every read endpoint, a
// connection that fails, a connector whose error quotes its config, and an
// update that sends the masks back. No marker is found in any HTTP answer,
// cm's log, the audit rows, the error details stored, or a child's
// environment, and no resolved reference is found anywhere in the store;
// the runners still get the real secrets: a process connector's handshake
// holds them (before and after the update), and a mysql source whose
// password comes from ${env:} connects with it.
func TestSecretsStaySecret(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	plugins, roots := filepath.Join(work, "plugins"), filepath.Join(work, "files")
	for _, d := range []string{plugins, roots} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// keep: writes its handshake and environment, then runs. fail: says
	// what it was given on stderr (as a connector quoting its DSN in an
	// error would), and exits.
	keep := `read -r hs; printf '%s\n' "$hs" >> ` + work + `/handshake; env > ` + work + `/env
while :; do echo '{"type":"checkpoint","subtopic":"s","ts":100,"token":"t"}'; echo '{"type":"heartbeat"}'; sleep 0.2; done`
	fail := `read -r hs; echo "cannot connect with config: $hs" >&2; exit 3`
	for name, script := range map[string]string{"keep": keep, "fail": fail} {
		argv, _ := json.Marshal([]string{"/bin/sh", "-c", script})
		if err := os.WriteFile(filepath.Join(plugins, name+".yaml"), []byte("name: "+name+"\ncommand: "+string(argv)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// References: cm's environment and a file hold these; the config names them.
	t.Setenv("CMSEC_ENV_PW", marker("env"))
	secretFile := filepath.Join(work, "pw.txt")
	if err := os.WriteFile(secretFile, []byte(marker("file")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{Tune: func(c *app.Config) {
		c.Connectors.PluginDir = plugins
		c.Connectors.FileRoots = []string{roots}
	}})
	var bodies []string
	do := func(method, path string, body any) cmtest.Envelope {
		t.Helper()
		env := n.Do(t, method, path, body)
		bodies = append(bodies, method+" "+path+" -> "+env.Raw)
		return env
	}
	okDo := func(method, path string, body any) cmtest.Envelope {
		t.Helper()
		env := do(method, path, body)
		if !env.IsSuccess {
			t.Fatalf("%s %s = %d %s", method, path, env.Status, env.Raw)
		}
		return env
	}

	processSource := func(plugin string) map[string]string {
		return map[string]string{
			"type": "process", "plugin": plugin,
			"password": marker("password"), "db_passwd": marker("passwd"), "pwd": marker("pwd"),
			"client_secret": marker("secret"), "accessToken": marker("token"), "credentials": marker("credential"),
			"basic_auth": marker("auth"), "private_key": marker("privatekey"), "apiKey": marker("apikey"),
			"dsn":     "mysql://u:" + marker("dsnurl") + "@127.0.0.1:3306/db",
			"goDsn":   "u:" + marker("dsngo") + "@tcp(127.0.0.1:3306)/db",
			"options": `{"user":"u","password":"` + marker("json") + `","nested":{"token":"` + marker("jsonnested") + `"}}`,
			"envPw":   "${env:CMSEC_ENV_PW}", "envDsn": "mysql://u:${env:CMSEC_ENV_PW}@127.0.0.1/db",
			"filePw": "${file:" + secretFile + "}",
		}
	}
	create := func(component string, cfg map[string]any) string {
		t.Helper()
		return okDo("POST", base+"create", map[string]any{"component": component, "config": cfg}).String()
	}
	keepName := create("p_sec-incr_trans-1-0", map[string]any{"source": processSource("keep")})
	// It may answer RUNNING (the program started) or TASK_EXCEPTION (it
	// was quicker to exit); either way it ends in EXCEPTION.
	do("POST", base+"create", map[string]any{"component": "p_sec-incr_trans-2-0", "config": map[string]any{"source": processSource("fail")}})
	cmtest.Eventually(t, 10*time.Second, "the failing connector is in EXCEPTION", func() bool {
		return n.Detail(t, "p_sec-incr_trans-2-0").State == model.StateException
	})
	// A mysql source on a port that refuses, with its password literal.
	mysqlFail := do("POST", base+"create", map[string]any{"component": "p_sec-full_trans-3-0", "config": map[string]any{
		"source": map[string]string{"type": "mysql", "host": "127.0.0.1", "port": refusedPort(t), "username": "u",
			"password": marker("mysqlpw"), "tables": "db.*"},
		"sink": map[string]string{"type": "file", "path": filepath.Join(roots, "out3.jsonl")},
	}})
	if mysqlFail.Code() != "TASK_EXCEPTION" {
		t.Fatalf("the refused mysql source: %s", mysqlFail.Raw)
	}
	// A reference to nothing: the task fails with SECRET_UNRESOLVED.
	unresolved := do("POST", base+"create", map[string]any{"component": "p_sec-incr_trans-4-0", "config": map[string]any{
		"source": map[string]string{"type": "process", "plugin": "keep", "password": "${env:CMSEC_NOT_SET}"}}})
	if unresolved.Code() != "TASK_EXCEPTION" || !strings.Contains(unresolved.Raw, model.CodeSecretUnresolved) || !strings.Contains(unresolved.Raw, "CMSEC_NOT_SET") {
		t.Fatalf("an unresolved reference: %s", unresolved.Raw)
	}
	// A factory's error quotes the value it refuses: scrubbed.
	if env := do("POST", base+"create", map[string]any{"component": "p_sec-incr_trans-7-0", "config": map[string]any{
		"source": map[string]string{"type": "file", "path": "mysql://u:" + marker("badpath") + "@127.0.0.1/db"},
		"sink":   map[string]string{"type": "file", "path": filepath.Join(roots, "out7.jsonl")},
	}}); env.IsSuccess || !strings.Contains(env.Raw, "mysql://u:"+model.Masked+"@127.0.0.1/db") {
		t.Fatalf("a refused path: %s", env.Raw)
	}
	// A mask with nothing stored behind it is refused, not stored.
	if env := do("POST", base+"create", map[string]any{"component": "p_sec-incr_trans-5-0", "config": map[string]any{
		"source": map[string]string{"type": "process", "plugin": "keep", "password": model.Masked}}}); env.Code() != "INVALID_ARGUMENT" {
		t.Fatalf("a create with the mask: %s", env.Raw)
	}

	handshakes := func() string {
		b, _ := os.ReadFile(filepath.Join(work, "handshake"))
		return string(b)
	}
	cmtest.Eventually(t, 10*time.Second, "the connector got its handshake", func() bool { return strings.Count(handshakes(), "\n") >= 1 })
	real := []string{marker("password"), marker("dsnurl"), marker("json"), marker("env"), marker("file"),
		"mysql://u:" + marker("env") + "@127.0.0.1/db"}
	for _, s := range real {
		if !strings.Contains(handshakes(), s) {
			t.Fatalf("the runner did not get %s: %s", s, handshakes())
		}
	}

	// Every read endpoint.
	for _, name := range []string{keepName, "p_sec-incr_trans-2-0", "p_sec-full_trans-3-0", "p_sec-incr_trans-4-0"} {
		okDo("GET", base+"detail?taskName="+q(name), nil)
		okDo("GET", base+"operations?taskName="+q(name)+"&limit=100", nil)
	}
	d := n.Detail(t, "p_sec-incr_trans-2-0")
	if d.State != model.StateException || len(d.ErrorDetails) == 0 || len(d.ErrorDetails[0].Stderr) == 0 {
		t.Fatalf("the failing connector's detail: %+v", d)
	}
	okDo("GET", base+"batchDetail?pageSize=50", nil)
	okDo("GET", base+"operations?limit=1000", nil)
	for _, p := range []string{"params", "nodes", "jobs"} {
		okDo("GET", base+p, nil)
	}
	do("GET", base+"health", nil) // unhealthy (tasks in EXCEPTION) is an answer too

	// The masks sent back, as detail shows them: the stored secrets stay.
	okDo("POST", base+"stop?taskName="+q(keepName), nil)
	shown := n.Detail(t, keepName).Config["source"]
	if shown["password"] != model.Masked || shown["dsn"] != "mysql://u:"+model.Masked+"@127.0.0.1:3306/db" || shown["envPw"] != "${env:CMSEC_ENV_PW}" {
		t.Fatalf("detail shows %v", shown)
	}
	okDo("POST", base+"update?taskName="+q(keepName), map[string]any{"source": map[string]string{
		"password": model.Masked, "dsn": "mysql://u:" + model.Masked + "@127.0.0.2:3306/db", "options": shown["options"],
		"goDsn": shown["goDsn"], "apiKey": shown["apiKey"],
	}})
	if env := do("POST", base+"update?taskName="+q(keepName), map[string]any{"sink": map[string]string{"password": model.Masked}}); env.Code() != "INVALID_ARGUMENT" {
		t.Fatalf("an update with a mask for nothing stored: %s", env.Raw)
	}
	okDo("POST", base+"resume?taskName="+q(keepName), nil)
	cmtest.Eventually(t, 10*time.Second, "the connector got its second handshake", func() bool { return strings.Count(handshakes(), "\n") >= 2 })
	second := strings.Split(strings.TrimSpace(handshakes()), "\n")[1]
	for _, s := range append(real, marker("dsngo"), marker("apikey"), marker("jsonnested"), "mysql://u:"+marker("dsnurl")+"@127.0.0.2:3306/db") {
		if !strings.Contains(second, s) {
			t.Fatalf("after the update the runner did not get %s: %s", s, second)
		}
	}
	okDo("GET", base+"detail?taskName="+q(keepName), nil)
	okDo("GET", base+"operations?taskName="+q(keepName)+"&limit=100", nil)
	okDo("POST", base+"stop?taskName="+q(keepName), nil)

	// Nothing of it anywhere but in the runners.
	for _, b := range bodies {
		if strings.Contains(b, mark) {
			t.Errorf("an answer shows a secret: %s", b)
		}
	}
	for _, e := range n.Logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, mark) {
			t.Errorf("cm's log shows a secret: %s", line)
		}
	}
	audit, err := n.Store.ListAudit(ctx, model.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := json.Marshal(audit); strings.Contains(string(raw), mark) || len(audit) < 10 {
		t.Errorf("audit rows (%d) show a secret: %s", len(audit), raw)
	}
	tasks, _, err := n.Store.ListTasks(ctx, model.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if strings.Contains(tk.ErrorDetails, mark) {
			t.Errorf("%s: stored error details show a secret: %s", tk.Component, tk.ErrorDetails)
		}
		for _, resolved := range []string{marker("env"), marker("file")} {
			if strings.Contains(tk.Config, resolved) {
				t.Errorf("%s: a resolved reference entered the store: %s", tk.Component, tk.Config)
			}
		}
	}
	childEnv, err := os.ReadFile(filepath.Join(work, "env"))
	if err != nil || len(childEnv) == 0 {
		t.Fatalf("the child's environment: %v", err)
	}
	if strings.Contains(string(childEnv), mark) {
		t.Errorf("the child's environment shows a secret:\n%s", childEnv)
	}

	// A mysql source whose password comes from ${env:} connects with it.
	t.Run("mysql connects with the resolved password", func(t *testing.T) { mysqlWithReference(t, n, roots) })
}

// mysqlWithReference: an account with a marker password on the test
// MariaDB server, a full_trans task reading a table with it through a
// ${env:} reference into a file sink.
func mysqlWithReference(t *testing.T, n *cmtest.Node, roots string) {
	ctx := context.Background()
	cfg, err := driver.ParseDSN(dbtest.ServerDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", dbtest.ServerDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	db := dbtest.NewMySQLDatabaseName(t)
	user := "cmsec_" + strings.TrimPrefix(db, "cm_test_")
	if len(user) > 32 {
		user = user[:32]
	}
	pw := marker("mysqlreal")
	for _, q := range []string{
		"CREATE TABLE `" + db + "`.t (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO `" + db + "`.t VALUES (1,'a'),(2,'b'),(3,'c')",
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + pw + "'",
		"GRANT SELECT, RELOAD, REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO '" + user + "'@'%'",
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP USER IF EXISTS '"+user+"'@'%'") })
	t.Setenv("CMSEC_MYSQL_PW", pw)
	out := filepath.Join(roots, "mysql.jsonl")
	name := n.OK(t, "POST", base+"create", map[string]any{"component": "p_sec-full_trans-6-0", "config": map[string]any{
		"source": map[string]string{"type": "mysql", "host": host, "port": port, "username": user,
			"password": "${env:CMSEC_MYSQL_PW}", "tables": db + ".t"},
		"sink": map[string]string{"type": "file", "path": out},
	}}).String()
	cmtest.Eventually(t, 30*time.Second, "the full import finished", func() bool {
		d := n.Detail(t, name)
		if d.State == model.StateException {
			t.Fatalf("the mysql task failed: %+v", d.ErrorDetails)
		}
		return d.State == model.StateFinished
	})
	if got := lines(t, out); got != 3 {
		t.Fatalf("%d rows imported, want 3", got)
	}
	if d := n.Detail(t, name); d.Config["source"]["password"] != "${env:CMSEC_MYSQL_PW}" {
		t.Fatalf("the reference is shown as written: %v", d.Config["source"])
	}
}
