package outcomes

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/dispatcher"
)

// Subject carries every replica's outcomes to the leader, the one status
// writer. Core NATS, not JetStream: an outcome lost while no leader listens
// only delays a status write; what decides a delivery's fate is in the queue.
const Subject = "kubehook.outcomes"

// Forwarding bounds: a batch goes out when it is this full or this old.
const (
	forwardBatch = 512
	forwardEvery = 50 * time.Millisecond
)

// Forwarder is the Reporter of a replica among several: it sends outcomes,
// batched, to the leader's Receiver. It runs on every replica.
type Forwarder struct {
	nc *nats.Conn

	mu      sync.Mutex
	pending []dispatcher.Outcome
	kick    chan struct{}
}

// NewForwarder returns a forwarder publishing on nc.
func NewForwarder(nc *nats.Conn) *Forwarder {
	return &Forwarder{nc: nc, kick: make(chan struct{}, 1)}
}

// Report queues an outcome for the leader. It never blocks.
func (f *Forwarder) Report(o dispatcher.Outcome) {
	f.mu.Lock()
	f.pending = append(f.pending, o)
	full := len(f.pending) >= forwardBatch
	f.mu.Unlock()
	if full {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// Start sends batches until ctx ends, then what is left.
func (f *Forwarder) Start(ctx context.Context) error {
	tick := time.NewTicker(forwardEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			f.flush(ctx)
			return nil
		case <-tick.C:
		case <-f.kick:
		}
		f.flush(ctx)
	}
}

// NeedLeaderElection reports false: every replica delivers, so every
// replica has outcomes to send.
func (f *Forwarder) NeedLeaderElection() bool { return false }

func (f *Forwarder) flush(ctx context.Context) {
	f.mu.Lock()
	batch := f.pending
	f.pending = nil
	f.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), forwardBatch)
		data, err := json.Marshal(batch[:n])
		if err == nil {
			err = f.nc.Publish(Subject, data)
		}
		if err != nil {
			log.FromContext(ctx).Error(err, "sending delivery outcomes to the leader; status may lag", "outcomes", n)
		}
		batch = batch[n:]
	}
}

// Receiver feeds the outcomes of every replica into the leader's tracker.
// It needs leader election: only the leader writes status.
type Receiver struct {
	nc      *nats.Conn
	tracker *Tracker
}

// NewReceiver returns a receiver for the tracker.
func NewReceiver(nc *nats.Conn, t *Tracker) *Receiver { return &Receiver{nc: nc, tracker: t} }

// Start listens until ctx ends.
func (r *Receiver) Start(ctx context.Context) error {
	sub, err := r.nc.Subscribe(Subject, func(m *nats.Msg) {
		var batch []dispatcher.Outcome
		if err := json.Unmarshal(m.Data, &batch); err != nil {
			log.FromContext(ctx).Error(err, "decoding delivery outcomes")
			return
		}
		for _, o := range batch {
			r.tracker.Report(o)
		}
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return sub.Unsubscribe()
}
