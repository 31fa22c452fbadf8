// Package journal holds the multi-step operations (pullback, migrate) that
// are journaled on the task row, as a pure step function: Advance takes the
// task, its journal and what the advancing node knows (Facts) and decides
// the next step — the row to write and its effects — or that there is
// nothing to do yet. Rollback rules live here too. Write applies a step in
// one transaction through model.Store.ChangeTask. The package reads no
// clock, no network and no cluster state of its own: the supervisor and the
// jobs gather Facts and apply the Step.
//
// A pullback: the operator's call writes step "stopping" (desired STOPPED);
//
//	stopping --(runner gone)--> rewrite source.checkpoint, version+1,
//	                            reset the rewound subtopics, restart --> resuming
//	stopping --(target past the progress the stop made durable, or the
//	            last version)-> rolled back to the desired state before
//	resuming --(RUNNING)------> cleared, the call's audit row success
//	resuming --(EXCEPTION)----> cleared, audit row failure
//
// A migrate: the call writes step "stopping" (or rebinds at once when the
// task is not running or its node is dead);
//
//	stopping (owner: old node) --(runner gone, target alive)-->
//	    version+1, node=target, progress rebound, desired as before --> starting
//	stopping --(target not alive)--> rolled back
//	starting (owner: target) --(RUNNING + a heartbeat after it)--> done
//	starting --(EXCEPTION, or the target died)--> rolled back: version+1 on
//	    the old node if it is alive, else left there; audit row failure
//
// While a journal is set, operator calls answer TASK_BUSY.
package journal

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/connector-manager/cm/model"
)

// Operations and their steps.
const (
	OpPullback = "pullback"
	OpMigrate  = "migrate"

	StepStopping = "stopping"
	StepResuming = "resuming"
	StepStarting = "starting"
)

// Journal is the in-flight operation stored in model.Task.Journal.
type Journal struct {
	Op   string `json:"op"`
	Step string `json:"step"`
	// Target is the time each rewound subtopic restarts from.
	Target map[string]int64 `json:"target"`
	// CheckpointBefore is source.checkpoint before the pullback; with
	// ProgressBefore it is what an operator needs to undo it.
	CheckpointBefore string           `json:"checkpointBefore"`
	ProgressBefore   map[string]int64 `json:"progressBefore"`
	VersionBefore    int64            `json:"versionBefore"`
	// DesiredBefore is restored if the operation has to be rolled back.
	DesiredBefore model.Desired `json:"desiredBefore"`
	// Force lets the rewrite step move a subtopic forward past its durable
	// progress (the operator's force=true).
	Force bool `json:"force,omitempty"`
	// From and To are the nodes a migrate moves the task between.
	From model.NodeID `json:"from,omitempty"`
	To   model.NodeID `json:"to,omitempty"`
	// AuditID is the operator's audit row, closed when the journal ends.
	AuditID int64     `json:"auditId"`
	Started time.Time `json:"started"`
}

// Encode is the journal as stored.
func (j *Journal) Encode() string {
	b, err := json.Marshal(j)
	if err != nil {
		return ""
	}
	return string(b)
}

// Decode reads a stored journal.
func Decode(s string) (*Journal, error) {
	var j Journal
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return nil, fmt.Errorf("decoding journal: %w", err)
	}
	return &j, nil
}

// Facts are what the node advancing a journal knows besides the task row.
type Facts struct {
	// Progress is the durable progress of the task's current version, by
	// subtopic (read once the task stopped, for the pullback's forward check).
	Progress map[string]int64
	// FromAlive and ToAlive say whether a migrate's old and new node are
	// alive; ToState names the new node's state for messages.
	FromAlive, ToAlive bool
	ToState            string
	// Beat says the migrated incarnation sent a heartbeat showing it
	// survived its start.
	Beat bool
}

// Outcome closes the operator's audit row of an operation.
type Outcome struct {
	Result, Code, Message string
}

// Step is what Advance decided: the row to write and what goes with it in
// the same transaction.
type Step struct {
	// Next is the changed copy of the task to write; nil: nothing to do now.
	Next *model.Task
	// Op names the step in the audit log ("pullback:rewrite", ...).
	Op string
	// Reset: a pullback's new incarnation drops the progress of these
	// subtopics and carries the others over (ResetSubtopics).
	Reset []string
	// Rebind: a migrate's new incarnation carries all progress over.
	Rebind bool
	// Incarnation, when set, starts a new incarnation with that reason.
	Incarnation string
	// Finish, when set, closes the operator's audit row.
	Finish *Outcome
	// Wake is the node to nudge once the step is written ("" none).
	Wake model.NodeID
	// Cause says why a step rolls the operation back (nil otherwise).
	Cause error
}

// Advance decides the next step of j for task t. Unknown operations or
// steps are left alone (nothing to do).
func Advance(t *model.Task, j *Journal, f Facts) Step {
	switch j.Op {
	case OpPullback:
		return advancePullback(t, j, f)
	case OpMigrate:
		return advanceMigrate(t, j, f)
	}
	return Step{}
}

// drop clears a journal that cannot be read.
func drop(t *model.Task) Step {
	next := *t
	next.Journal = ""
	return Step{Next: &next, Op: "journal:dropped"}
}

// restoreDesired puts back what the operator had asked before the
// operation: a task that was meant to run is resumed.
func restoreDesired(t *model.Task, j *Journal) {
	if j.DesiredBefore == model.DesiredRunning && !t.State.Active() && t.State != model.StateFinished {
		if err := t.Apply(model.EventResume); err == nil {
			return
		}
	}
	t.Desired = j.DesiredBefore
}
