package queue

import "time"

// A quiet queue costs JetStream next to nothing: no count is read while
// nothing changes (Changes), and the shared consumer's waiting pull
// request is renewed every idlePullExpiry instead of every 30s (the
// client's default). Its heartbeats come as often as with the default, so
// a lost pull request or a server that stopped answering is noticed as
// soon: after two missed heartbeats.
const (
	idlePullExpiry = 5 * time.Minute
	pullHeartbeat  = 15 * time.Second
)

// ConsumerErrors returns how many times consuming went wrong: missed
// heartbeats, a deleted consumer, a pull nobody answered, a consumption
// that stopped by itself. While the queue is quiet nothing else asks
// JetStream anything, so the consumers' heartbeats are what watch over it;
// a reader that asks nothing while Changes does not move (the queue
// gauges) asks again when this moves.
func (q *Queue) ConsumerErrors() uint64 { return q.consumerErrors.Load() }
