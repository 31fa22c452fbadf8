package checkpoint

// Position is where a source stands in one subtopic: the unix time (seconds)
// of the last record delivered and an opaque token the source can resume
// from exactly. A Position with an empty Token means "start at the first
// record whose time is at or after TS" (a pullback or a configured start).
type Position struct {
	Subtopic string `json:"subtopic"`
	TS       int64  `json:"ts"`
	Token    string `json:"token,omitempty"`
}

// Exact reports whether p names an exact resume point rather than a time.
func (p Position) Exact() bool { return p.Token != "" }
