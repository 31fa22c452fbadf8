package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/internal/cmtest"
	"github.com/connector-manager/cm/internal/dbtest"
	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/view"
)

// TestRowMetadataMinimal: a source server of the test's own logging
// MINIMAL row metadata (the shared one logs FULL, and the setting is
// GLOBAL only). The running task shows MYSQL_ROW_METADATA_MINIMAL as a
// WARNING in detail and in health. With sink.ddl=stop, after a column reorder the task stops
// at it; a pullback to a time before it, whose rows would be decoded with
// the reordered definition, is refused (PULLBACK_UNSAFE, naming the
// statement) and changes nothing; the task then continues past the
// statement with skipDdl, and the target equals the source.
func TestRowMetadataMinimal(t *testing.T) {
	srv := dbtest.StartServer(t, "--binlog-row-metadata=MINIMAL")
	srv.Exec(t, "CREATE DATABASE src; CREATE DATABASE dst; CREATE TABLE src.t (id INT PRIMARY KEY, a VARCHAR(20), b INT)")
	port := strconv.Itoa(srv.Port)
	n := cmtest.Start(t, dbtest.SQLiteURL(t), cmtest.Options{})
	body := map[string]any{"component": component("incr_trans"), "config": map[string]map[string]string{
		"source": {"type": "mysql", "host": "127.0.0.1", "port": port, "username": "root", "tables": "src.*"},
		"sink":   {"type": "mysql", "host": "127.0.0.1", "port": port, "username": "root", "databaseMap": "src:dst", "ddl": "stop"},
	}}
	name := n.OK(t, http.MethodPost, base+"create", body).String()
	sub := "127.0.0.1-" + port
	started(t, n, name, sub)
	warned := func(where string, errs []model.ErrorDetail) {
		t.Helper()
		for _, d := range errs {
			if d.Code == "MYSQL_ROW_METADATA_MINIMAL" && d.Level == model.LevelWarning && strings.Contains(d.Message, "MINIMAL") {
				return
			}
		}
		t.Fatalf("%s: no MYSQL_ROW_METADATA_MINIMAL warning in %+v", where, errs)
	}
	warned("detail", n.Detail(t, name).ErrorDetails)
	var health view.HealthReport
	if err := json.Unmarshal(n.Do(t, http.MethodGet, base+"health", nil).Result, &health); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range health.Problems {
		found = found || (p.Code == "MYSQL_ROW_METADATA_MINIMAL" && p.Severity == view.HealthWarning)
	}
	if !found {
		t.Fatalf("health shows no row metadata warning: %+v", health)
	}

	srv.Exec(t, "INSERT INTO src.t VALUES (1, 'one', 1)")
	cmtest.Eventually(t, 30*time.Second, "the first row reaches the target", func() bool {
		var c int
		return srv.DB.QueryRow("SELECT COUNT(*) FROM dst.t").Scan(&c) == nil && c == 1
	})
	before := srv.NextSecond(t)
	srv.Exec(t, "INSERT INTO src.t VALUES (2, 'two', 2), (3, 'three', 3)")
	srv.Exec(t, "ALTER TABLE src.t MODIFY a VARCHAR(20) AFTER b")
	srv.Exec(t, "INSERT INTO src.t VALUES (4, 4, 'four')")
	cmtest.Eventually(t, 30*time.Second, "the task stops at the reorder", func() bool {
		return n.Detail(t, name).State == model.StateException
	})

	env := n.Do(t, http.MethodPost, base+"pullback?taskName="+q(name)+"&timestamp="+itoa(before), nil)
	if env.Status != http.StatusConflict || env.Code() != "PULLBACK_UNSAFE" || env.ErrMsg == nil ||
		!strings.Contains(*env.ErrMsg, "MODIFY a VARCHAR(20) AFTER b") {
		t.Fatalf("pullback across the reorder = %d %s", env.Status, env.Raw)
	}
	t.Logf("refused: %s", *env.ErrMsg)
	if d := n.Detail(t, name); d.State != model.StateException || d.Version != 1 || d.Operation != nil {
		t.Fatalf("after the refused pullback: %s v%d %+v", d.State, d.Version, d.Operation)
	}

	srv.Exec(t, "ALTER TABLE dst.t MODIFY a VARCHAR(20) AFTER b")
	n.OK(t, http.MethodPost, base+"resume?taskName="+q(name)+"&skipDdl=true", nil)
	cmtest.Eventually(t, 30*time.Second, "the target equals the source", func() bool {
		var s, d string
		q := "SELECT GROUP_CONCAT(CONCAT_WS(':', id, b, a) ORDER BY id) FROM %s.t"
		return srv.DB.QueryRow(sprintf(q, "src")).Scan(&s) == nil && srv.DB.QueryRow(sprintf(q, "dst")).Scan(&d) == nil && s == d
	})
	warned("detail after the resume", n.Detail(t, name).ErrorDetails)
}
