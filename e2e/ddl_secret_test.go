package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDDLSecretStaysHidden: a schema statement that carries a password (a
// URL in a table comment, as FEDERATED and CONNECT tables carry their
// connection) is applied on the target as it is, and the password shows
// nowhere cm speaks: not in the task's operations (runtime:ddl), its DDL
// history, its detail or the node's log.
func TestDDLSecretStaysHidden(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.srcT("a")+" (id INT PRIMARY KEY, v INT)")
	n, name := startIncrWith(t, e, nil)
	const secret = "Sup3rS3cretPw"
	e.exec(t, "ALTER TABLE "+e.srcT("a")+" COMMENT = 'copy of mysql://app:"+secret+"@db.internal:3306/shop'")
	e.exec(t, "INSERT INTO "+e.srcT("a")+" VALUES (1, 1)")
	reached(t, n, name, e.subtopic(), e.binlogEnd(t), 60*time.Second)
	e.same(t, "a")
	var comment string
	if err := e.admin.QueryRow("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'a'", e.dst).Scan(&comment); err != nil || !strings.Contains(comment, secret) {
		t.Fatalf("the target's comment %q (%v): the statement was not applied as it is", comment, err)
	}
	for what, body := range map[string]string{
		"operations": string(n.OK(t, http.MethodGet, base+"operations?taskName="+q(name), nil).Result),
		"ddlHistory": string(n.OK(t, http.MethodGet, base+"ddlHistory?taskName="+q(name), nil).Result),
		"detail":     string(n.OK(t, http.MethodGet, base+"detail?taskName="+q(name), nil).Result),
	} {
		if !strings.Contains(body, "COMMENT") && what != "detail" {
			t.Fatalf("%s does not show the statement: %s", what, body)
		}
		if strings.Contains(body, secret) {
			t.Fatalf("%s shows the password: %s", what, body)
		}
	}
	for _, entry := range n.Logs.All() {
		b, _ := json.Marshal(entry.ContextMap())
		if line := entry.Message + " " + string(b); strings.Contains(line, secret) {
			t.Fatalf("the log shows the password: %s", fmt.Sprint(line))
		}
	}
}
