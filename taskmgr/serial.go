package taskmgr

import (
	"context"
	"sync"
)

// serial lets calls on one key run one at a time on this node: the steps
// of a Kafka Connect config replace (stop, update, start again) of one
// task, so that two identical PUTs at once (a retrying client) run one
// after the other and the second finds the config in place, instead of
// stopping the task the first one just started. Calls through other nodes
// still meet the compare-and-swap and answer TASK_BUSY.
type serial struct {
	mu    sync.Mutex
	slots map[string]*slot
}

type slot struct {
	turn  chan struct{} // holds a token while a call runs
	users int
}

// acquire waits for key's turn; release gives it up.
func (s *serial) acquire(ctx context.Context, key string) (release func(), err error) {
	s.mu.Lock()
	if s.slots == nil {
		s.slots = map[string]*slot{}
	}
	sl := s.slots[key]
	if sl == nil {
		sl = &slot{turn: make(chan struct{}, 1)}
		s.slots[key] = sl
	}
	sl.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if sl.users--; sl.users == 0 {
			delete(s.slots, key)
		}
		s.mu.Unlock()
	}
	select {
	case sl.turn <- struct{}{}:
		return func() { <-sl.turn; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
