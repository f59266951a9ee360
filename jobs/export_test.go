package jobs

import "context"

// SetReplicationReader replaces how d reads the Redis master's replication
// ID, so a test can stage a failover.
func SetReplicationReader(d *Dispatcher, read func(context.Context) (string, error)) {
	d.readRepl = read
}

// NextImportBatchRows sizes an import's next batch from the last one.
var NextImportBatchRows = nextBatchRows
