package mysql

// Prefetch: the binlog and the snapshot sources decode while the sink
// writes the batch before (connector.Prefetcher).
func (s *binlogSource) Prefetch() bool { return true }

// Prefetch is connector.Prefetcher.
func (s *snapshotSource) Prefetch() bool { return true }
