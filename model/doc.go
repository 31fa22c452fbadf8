// Package model holds cm's entities, the task state machine and the GORM
// store shared by every node.
//
// A task has a desired state (what operators asked: RUNNING, PAUSED, STOPPED
// or DELETED; only operator calls write it) and an observed state (what its
// runner reports, or the transitional state an operator call put it in). The
// one table of legal observed transitions is in state.go:
//
//	           resume             started
//	CREATED ───────────▶ STARTING ─────────▶ RUNNING ──── done ────▶ FINISHED
//	   │                  │     │             │    │                   │
//	   │ delete      stop,│     │ failed      │    │ stop, delete      │ restart ─▶ STARTING
//	   │            delete│     ▼             │    ▼                   │ delete ──▶ DELETED
//	   │                  │  EXCEPTION ◀──────┘  STOPPING ── failed ─▶ EXCEPTION
//	   │                  ▼     │ stop, delete ─▶ STOPPING
//	   │              STOPPING  │ resume, restart ─▶ STARTING
//	   │                  │ stopped
//	   ▼                  ▼
//	DELETED ◀─ delete ─ STOPPED ── resume, restart ─▶ STARTING
//
// PAUSED sits beside RUNNING: pause (from CREATED, STOPPED or EXCEPTION it
// starts the task first, through STARTING) leaves a live runner's state as it
// is until the runner reports paused; from PAUSED, resume goes to STARTING
// (started brings RUNNING once data moves), stop and delete to STOPPING, and
// failed to EXCEPTION:
//
//	RUNNING ── paused ──▶ PAUSED ── resume ─▶ STARTING
//	STARTING ─ paused ──▶ PAUSED ── stop, delete ─▶ STOPPING
//
// STOPPING goes to DELETED instead of STOPPED when the desired state is
// DELETED. An event that leaves the state as it is (resume while RUNNING,
// stop while STOPPED, delete while DELETED) is an idempotent success.
//
// Every write of a task row is a compare-and-swap on Revision (UpdateTask),
// in a short transaction with its audit row. Version is the incarnation
// that names the task and fences runtime writes: checkpoints and heartbeats
// carry it and are refused once a newer incarnation exists (SaveProgress).
//
// Driver errors are translated once, here, into ErrNotFound,
// ErrAlreadyExists, ErrConflict and ErrUnavailable.
package model
