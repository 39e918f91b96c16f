// Package dispatcher moves deliveries from the queue to the sender, one
// subscription isolated from another, and reports each outcome.
//
// Isolation: every subscription has an in-flight limit. A delivery for a
// subscription at its limit waits in a short per-subscription line, and
// beyond that is put back in the queue for later; no worker ever waits on a
// busy subscription, so a slow or dead endpoint holds at most its own limit
// of workers.
package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/registry"
	"github.com/kubehook/kubehook/internal/retry"
	"github.com/kubehook/kubehook/internal/sender"
)

// Sender makes exactly one HTTP attempt.
type Sender interface {
	Send(ctx context.Context, sub *registry.Subscription, req sender.Request) sender.Result
}

// Reporter receives the outcome of every attempt. Report must not block.
type Reporter interface {
	Report(Outcome)
}

// Outcome is the result of one attempt, for status.
type Outcome struct {
	Subscription types.NamespacedName
	UID          types.UID
	DeliveryID   string
	At           time.Time
	// Attempts made for this delivery, this one included.
	Attempts   int
	OK         bool
	StatusCode int
	// Message says why an attempt failed; it holds no secrets.
	Message string
	// Deactivated: this failure made the subscription inactive.
	Deactivated bool
	// DeadLettered: the delivery exhausted its attempts.
	DeadLettered bool
}

// Options tune the dispatcher.
type Options struct {
	// Concurrency bounds the attempts in flight across all subscriptions.
	Concurrency int
	// PerSubscription bounds the attempts in flight for one subscription.
	PerSubscription int
	// WaitingPerSubscription bounds the deliveries held in memory behind a
	// busy subscription; more are put back in the queue.
	WaitingPerSubscription int
	// BusyDelay is how long a delivery put back for a busy subscription waits.
	BusyDelay time.Duration
	// GracePeriod is how long in-flight attempts may finish at shutdown.
	GracePeriod time.Duration
	// Source is the CloudEvents source attribute.
	Source string
	// Now and Rand are the clock and jitter source; tests inject them.
	Now  func() time.Time
	Rand func() float64
	// ProgressInterval is how often a long attempt tells JetStream it is
	// still in progress; below the queue's ack wait.
	ProgressInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 256
	}
	if o.PerSubscription <= 0 {
		o.PerSubscription = 8
	}
	if o.WaitingPerSubscription <= 0 {
		o.WaitingPerSubscription = 4 * o.PerSubscription
	}
	if o.BusyDelay <= 0 {
		o.BusyDelay = time.Second
	}
	if o.GracePeriod <= 0 {
		o.GracePeriod = 20 * time.Second
	}
	if o.Source == "" {
		o.Source = "kubehook"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 10 * time.Second
	}
	return o
}

// Dispatcher consumes the queue and delivers. It is a manager.Runnable.
type Dispatcher struct {
	queue    *queue.Queue
	registry *registry.Registry
	sender   Sender
	reporter Reporter
	opts     Options

	sem chan struct{}
	wg  sync.WaitGroup
	// stopping is set once fetching has stopped: no new attempts start.
	stopping atomic.Bool

	mu   sync.Mutex
	subs map[types.UID]*subState
	// sendCtx outlives the consume context by the grace period.
	sendCtx context.Context
}

// subState is the dispatcher's view of one subscription.
type subState struct {
	inflight     int
	waiting      []*queue.Msg
	failingSince time.Time
	observed     bool
}

// New returns a dispatcher; Start runs it.
func New(q *queue.Queue, reg *registry.Registry, s Sender, r Reporter, o Options) *Dispatcher {
	o = o.withDefaults()
	return &Dispatcher{
		queue: q, registry: reg, sender: s, reporter: r, opts: o,
		sem:  make(chan struct{}, o.Concurrency),
		subs: map[types.UID]*subState{},
	}
}

// Start consumes until ctx ends, then lets in-flight attempts finish within
// the grace period. Deliveries not yet attempted stay unacked in the queue.
func (d *Dispatcher) Start(ctx context.Context) error {
	sendCtx, cancelSends := context.WithCancel(context.Background())
	defer cancelSends()
	d.sendCtx = sendCtx

	err := d.queue.Consume(ctx, d.handle)
	d.stopping.Store(true)

	// Stop: in-flight attempts get the grace period, then are cancelled.
	finished := make(chan struct{})
	go func() { d.wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(d.opts.GracePeriod):
		cancelSends()
		<-finished
	}
	return err
}

// handle runs on the consumer's goroutine: it never waits on a busy subscription.
func (d *Dispatcher) handle(m *queue.Msg) {
	ctx := d.sendCtx
	if d.stopping.Load() {
		_ = m.Release()
		return
	}
	sub, ok := d.registry.Get(m.Subscription)
	if !ok || sub.UID != m.SubscriptionUID || !sub.Active() {
		// Deleted, recreated, suspended, inactive or no longer permitted.
		metrics.DeliveriesTotal.WithLabelValues(m.EventType, metrics.ResultDropped).Inc()
		if err := m.Drop(ctx); err != nil {
			log.FromContext(ctx).Error(err, "dropping delivery", "delivery", m.ID)
		}
		return
	}

	d.mu.Lock()
	st := d.state(sub.UID)
	switch {
	case st.inflight < d.opts.PerSubscription:
		st.inflight++
		d.mu.Unlock()
		d.sem <- struct{}{} // global capacity, shared fairly by the per-subscription limits
		d.wg.Add(1)
		go d.work(sub.UID, m)
	case len(st.waiting) < d.opts.WaitingPerSubscription:
		st.waiting = append(st.waiting, m)
		d.mu.Unlock()
	default:
		d.mu.Unlock()
		// Not an attempt: the attempt count stays as it is.
		if err := m.Retry(ctx, d.opts.Now().Add(d.opts.BusyDelay), m.Attempts); err != nil {
			log.FromContext(ctx).Error(err, "putting back delivery for a busy subscription", "delivery", m.ID)
		}
	}
}

func (d *Dispatcher) state(uid types.UID) *subState {
	st := d.subs[uid]
	if st == nil {
		st = &subState{}
		d.subs[uid] = st
	}
	return st
}

// work attempts m, then the deliveries waiting behind it for the same subscription.
func (d *Dispatcher) work(uid types.UID, m *queue.Msg) {
	defer d.wg.Done()
	defer func() { <-d.sem }()
	for m != nil {
		d.attempt(m)
		d.mu.Lock()
		st := d.subs[uid]
		if d.stopping.Load() {
			// Shutting down: what has not started stays queued for the next start.
			for _, w := range st.waiting {
				_ = w.Release()
			}
			st.waiting, m = nil, nil
			st.inflight--
			d.mu.Unlock()
			return
		}
		if len(st.waiting) > 0 {
			m = st.waiting[0]
			st.waiting[0] = nil
			st.waiting = st.waiting[1:]
		} else {
			m = nil
			st.inflight--
			if st.inflight == 0 && st.failingSince.IsZero() {
				delete(d.subs, uid)
			}
		}
		d.mu.Unlock()
	}
}

// attempt makes one delivery attempt and finishes the message: acked on
// success, rescheduled on failure, dead-lettered when exhausted.
func (d *Dispatcher) attempt(m *queue.Msg) {
	ctx := d.sendCtx
	logger := log.FromContext(ctx).WithValues("delivery", m.ID, "subscription", m.Subscription)
	sub, ok := d.registry.Get(m.Subscription)
	if !ok || sub.UID != m.SubscriptionUID || !sub.Active() {
		metrics.DeliveriesTotal.WithLabelValues(m.EventType, metrics.ResultDropped).Inc()
		if err := m.Drop(ctx); err != nil {
			logger.Error(err, "dropping delivery")
		}
		return
	}

	body, contentType, err := d.render(sub, m)
	if err != nil {
		// The queue only holds what a source accepted; this is a bug, kept for replay.
		metrics.DeadLettersTotal.Inc()
		if err := m.DeadLetter(ctx, err.Error()); err != nil {
			logger.Error(err, "dead-lettering unrenderable delivery")
		}
		return
	}

	stop := d.keepInProgress(m)
	start := d.opts.Now()
	res := d.sender.Send(ctx, sub, sender.Request{ID: m.ID, Timestamp: start, Body: body, ContentType: contentType})
	stop()
	now := d.opts.Now()
	metrics.DeliveryDuration.WithLabelValues(m.EventType).Observe(res.Duration.Seconds())

	out := Outcome{
		Subscription: m.Subscription, UID: m.SubscriptionUID, DeliveryID: m.ID,
		At: now, Attempts: m.Attempts + 1, OK: res.OK(), StatusCode: res.StatusCode,
	}
	if res.OK() {
		d.setFailingSince(sub, time.Time{})
		metrics.DeliveriesTotal.WithLabelValues(m.EventType, metrics.ResultSuccess).Inc()
		if err := m.Done(ctx); err != nil {
			logger.Error(err, "acking delivered message; it may be delivered again")
		}
		d.reporter.Report(out)
		return
	}

	if res.Err != nil {
		out.Message = res.Err.Error()
	}
	failingSince := d.setFailingSince(sub, now)
	switch {
	case retry.ShouldDeactivate(sub.Delivery, failingSince, now, res.StatusCode):
		out.Deactivated = true
		// Report first: a reconcile racing with this reads the deactivation
		// from the tracker rather than re-registering the entry as active.
		d.reporter.Report(out)
		d.registry.Deactivate(sub.ID, sub.UID)
		metrics.DeliveriesTotal.WithLabelValues(m.EventType, metrics.ResultDeactivate).Inc()
		metrics.DeadLettersTotal.Inc()
		err = m.DeadLetter(ctx, "subscription deactivated: "+out.Message)
	case retry.Exhausted(sub.Delivery, out.Attempts):
		out.DeadLettered = true
		metrics.DeliveriesTotal.WithLabelValues(m.EventType, metrics.ResultDeadLetter).Inc()
		metrics.DeadLettersTotal.Inc()
		err = m.DeadLetter(ctx, fmt.Sprintf("gave up after %d attempts: %s", out.Attempts, out.Message))
	default:
		delay := retry.Delay(sub.Delivery, out.Attempts, res.RetryAfter, d.opts.Rand())
		metrics.DeliveriesTotal.WithLabelValues(m.EventType, metrics.ResultRetry).Inc()
		err = m.Retry(ctx, now.Add(delay), out.Attempts)
	}
	if err != nil {
		logger.Error(err, "finishing failed delivery; it will be attempted again")
	}
	if !out.Deactivated {
		d.reporter.Report(out)
	}
}

// setFailingSince records the start of a failure streak (or its end, with
// the zero time) and returns the streak's start. A streak already recorded
// in status (before a restart) counts from its true start.
func (d *Dispatcher) setFailingSince(sub *registry.Subscription, at time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state(sub.UID)
	seed := !st.observed // status is stale once this process has seen an outcome
	st.observed = true
	switch {
	case at.IsZero():
		st.failingSince = time.Time{}
	case seed && !sub.FailingSince.IsZero() && sub.FailingSince.Before(at):
		st.failingSince = sub.FailingSince
	case st.failingSince.IsZero():
		st.failingSince = at
	}
	return st.failingSince
}

func (d *Dispatcher) render(sub *registry.Subscription, m *queue.Msg) ([]byte, string, error) {
	var ev payload.Event
	if err := json.Unmarshal(m.Event, &ev); err != nil {
		return nil, "", fmt.Errorf("decoding queued event: %w", err)
	}
	return payload.Render(sub.PayloadFormat, ev, m.ID, d.opts.Source)
}

// keepInProgress extends the message's ack wait while a slow attempt runs.
func (d *Dispatcher) keepInProgress(m *queue.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d.opts.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() { close(done) }
}
