// Package dispatcher moves deliveries from the queue to the sender, one
// subscription isolated from another, and reports each outcome.
//
// Isolation: every subscription has an in-flight limit. When a delivery
// arrives for a subscription at its limit, the subscription is "parked": its
// deliveries are moved, once each, to a line of its own in the queue, read
// by a consumer whose window is the subscription's limit. No worker ever
// waits on a busy subscription, a slow or dead endpoint holds at most its
// own limit of workers, and its backlog waits on disk, not in memory and not
// in front of the other subscriptions. A parked subscription whose line runs
// empty goes back to the shared consumer.
package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
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
	// GracePeriod is how long in-flight attempts may finish at shutdown.
	GracePeriod time.Duration
	// Source is the CloudEvents source attribute.
	Source string
	// Now and Rand are the clock and jitter source; tests inject them.
	Now  func() time.Time
	Rand func() float64
	// UnparkAfter is how long a parked subscription must be idle before it
	// returns to the shared consumer.
	UnparkAfter time.Duration
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
	if o.UnparkAfter <= 0 {
		o.UnparkAfter = 10 * time.Second
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
	// stopping is set, and stop closed, once fetching has stopped: no new
	// attempts start.
	stopping atomic.Bool
	stop     chan struct{}

	mu   sync.Mutex
	subs map[types.UID]*subState
	// sendCtx outlives the consume context by the grace period.
	sendCtx context.Context
}

// subState is the dispatcher's view of one subscription.
type subState struct {
	// slots holds one token per attempt in flight, up to the limit: the
	// shared consumer takes one only if it is free at once, a parked line's
	// consumer waits for one (it holds up only its own subscription).
	slots        chan struct{}
	inflight     int
	failingSince time.Time
	observed     bool
	// parked is set while the subscription's deliveries go to its own line;
	// stopParked stops that line's consumer. parkMu orders parking against
	// unparking, so no delivery is parked without a consumer.
	parked     bool
	parkMu     sync.Mutex
	stopParked func()
	// parking counts copies on their way to the line, not yet stored.
	parking atomic.Int64
	// unpark fires UnparkAfter after the parked line last went idle.
	unpark *time.Timer
}

// New returns a dispatcher; Start runs it.
func New(q *queue.Queue, reg *registry.Registry, s Sender, r Reporter, o Options) *Dispatcher {
	o = o.withDefaults()
	return &Dispatcher{
		queue: q, registry: reg, sender: s, reporter: r, opts: o,
		sem:  make(chan struct{}, o.Concurrency),
		stop: make(chan struct{}),
		subs: map[types.UID]*subState{},
	}
}

// Start consumes until ctx ends, then lets in-flight attempts finish within
// the grace period. Deliveries not yet attempted stay unacked in the queue.
func (d *Dispatcher) Start(ctx context.Context) error {
	sendCtx, cancelSends := context.WithCancel(context.Background())
	defer cancelSends()
	d.sendCtx = sendCtx

	if err := d.resumeParked(ctx); err != nil {
		return err
	}
	err := d.queue.Consume(ctx, d.handle)
	d.stopping.Store(true)
	close(d.stop)
	d.stopParkedLines()

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

// handle runs on the shared consumer's goroutine: it never waits on a busy
// subscription.
func (d *Dispatcher) handle(m *queue.Msg) {
	ctx := d.sendCtx
	if d.stopping.Load() {
		_ = m.Release()
		return
	}
	sub, ok := d.registry.Get(m.Subscription)
	if !ok || sub.UID != m.SubscriptionUID || !sub.Active() {
		d.drop(m)
		return
	}
	d.mu.Lock()
	st := d.state(sub.UID)
	if !st.parked {
		select {
		case st.slots <- struct{}{}:
			st.inflight++
			d.mu.Unlock()
			d.startWorker(sub.UID, st, m)
			return
		default:
		}
	}
	// Counted before unlocking, so work does not forget this state while
	// the delivery is on its way to the line.
	st.parking.Add(1)
	d.mu.Unlock()
	if err := d.park(ctx, sub.UID, st, m); err != nil {
		log.FromContext(ctx).Error(err, "parking a delivery for a busy subscription; it will come back", "delivery", m.ID)
	}
}

// park moves m to the subscription's own line, starting that line's
// consumer if it is not running.
func (d *Dispatcher) park(ctx context.Context, uid types.UID, st *subState, m *queue.Msg) error {
	st.parkMu.Lock()
	defer st.parkMu.Unlock()
	if err := d.ensureParkedConsumer(ctx, uid, st); err != nil {
		st.parking.Add(-1)
		return err
	}
	if err := m.Park(func() { st.parking.Add(-1) }); err != nil {
		st.parking.Add(-1)
		return err
	}
	metrics.ParkedTotal.Inc()
	return nil
}

// ensureParkedConsumer starts the consumer of uid's line; parkMu is held.
func (d *Dispatcher) ensureParkedConsumer(ctx context.Context, uid types.UID, st *subState) error {
	if st.stopParked != nil {
		return nil
	}
	// The line's window is a few times the in-flight limit, so fetching
	// and acking overlap with attempts; slots still bound the attempts.
	stop, err := d.queue.ConsumeParked(ctx, uid, 4*d.opts.PerSubscription, func(m *queue.Msg) { d.handleParked(uid, st, m) })
	if err != nil {
		return err
	}
	st.stopParked = stop
	d.mu.Lock()
	st.parked = true
	d.mu.Unlock()
	return nil
}

// handleParked runs on a parked line's consumer goroutine: waiting for a
// free slot here delays only this subscription.
func (d *Dispatcher) handleParked(uid types.UID, st *subState, m *queue.Msg) {
	select {
	case st.slots <- struct{}{}:
	case <-d.stop:
	}
	if d.stopping.Load() {
		_ = m.Release()
		return
	}
	d.mu.Lock()
	st.inflight++
	d.mu.Unlock()
	d.startWorker(uid, st, m)
}

func (d *Dispatcher) startWorker(uid types.UID, st *subState, m *queue.Msg) {
	d.sem <- struct{}{} // global capacity, shared fairly by the per-subscription limits
	d.wg.Add(1)
	go d.work(uid, st, m)
}

func (d *Dispatcher) drop(m *queue.Msg) {
	// Deleted, recreated, suspended, inactive or no longer permitted.
	metrics.DeliveriesTotal.WithLabelValues(m.EventType, metrics.ResultDropped).Inc()
	if err := m.Drop(d.sendCtx); err != nil {
		log.FromContext(d.sendCtx).Error(err, "dropping delivery", "delivery", m.ID)
	}
}

func (d *Dispatcher) state(uid types.UID) *subState {
	st := d.subs[uid]
	if st == nil {
		st = &subState{slots: make(chan struct{}, d.opts.PerSubscription)}
		d.subs[uid] = st
	}
	return st
}

// work makes one attempt, then frees the subscription's slot; the last
// attempt of a parked subscription checks whether its line ran empty.
func (d *Dispatcher) work(uid types.UID, st *subState, m *queue.Msg) {
	defer d.wg.Done()
	defer func() { <-d.sem }()
	d.attempt(m)
	d.mu.Lock()
	<-st.slots
	st.inflight--
	idle := st.inflight == 0
	if idle && !st.parked && st.parking.Load() == 0 && st.failingSince.IsZero() && d.subs[uid] == st {
		delete(d.subs, uid)
	}
	if idle && st.parked && !d.stopping.Load() {
		// Not at once: a subscription in a burst would flap between the
		// lines, and each switch costs round trips on the shared consumer.
		// One timer per subscription, pushed back by every idle moment.
		if st.unpark == nil {
			st.unpark = time.AfterFunc(d.opts.UnparkAfter, func() { d.maybeUnpark(uid, st) })
		} else {
			st.unpark.Reset(d.opts.UnparkAfter)
		}
	}
	d.mu.Unlock()
}

// maybeUnpark returns a subscription whose line is empty to the shared
// consumer.
func (d *Dispatcher) maybeUnpark(uid types.UID, st *subState) {
	if d.stopping.Load() {
		return
	}
	st.parkMu.Lock()
	defer st.parkMu.Unlock()
	d.mu.Lock()
	busy := st.inflight > 0
	d.mu.Unlock()
	if st.stopParked == nil || busy || st.parking.Load() > 0 {
		return
	}
	empty, err := d.queue.ParkedEmpty(d.sendCtx, uid)
	if err != nil || !empty {
		return
	}
	st.stopParked()
	st.stopParked = nil
	d.mu.Lock()
	st.parked = false
	d.mu.Unlock()
}

// resumeParked restarts the lines left parked by an earlier run.
func (d *Dispatcher) resumeParked(ctx context.Context) error {
	uids, err := d.queue.ParkedSubscriptions(ctx)
	if err != nil {
		return err
	}
	for _, uid := range uids {
		d.mu.Lock()
		st := d.state(uid)
		d.mu.Unlock()
		st.parkMu.Lock()
		err := d.ensureParkedConsumer(ctx, uid, st)
		st.parkMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// stopParkedLines stops every parked line's consumer, at shutdown.
func (d *Dispatcher) stopParkedLines() {
	d.mu.Lock()
	states := make([]*subState, 0, len(d.subs))
	for _, st := range d.subs {
		states = append(states, st)
	}
	d.mu.Unlock()
	for _, st := range states {
		st.parkMu.Lock()
		if st.stopParked != nil {
			st.stopParked()
			st.stopParked = nil
		}
		st.parkMu.Unlock()
	}
}

// attempt makes one delivery attempt and finishes the message: acked on
// success, rescheduled on failure, dead-lettered when exhausted.
func (d *Dispatcher) attempt(m *queue.Msg) {
	ctx := d.sendCtx
	// Built only when there is something to log: attempts are the hot path.
	logger := func() logr.Logger {
		return log.FromContext(ctx).WithValues("delivery", m.ID, "subscription", m.Subscription)
	}
	sub, ok := d.registry.Get(m.Subscription)
	if !ok || sub.UID != m.SubscriptionUID || !sub.Active() {
		d.drop(m)
		return
	}

	body, contentType, err := d.render(sub, m)
	if err != nil {
		// The queue only holds what a source accepted; this is a bug, kept for replay.
		metrics.DeadLettersTotal.Inc()
		if err := m.DeadLetter(ctx, err.Error()); err != nil {
			logger().Error(err, "dead-lettering unrenderable delivery")
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
			logger().Error(err, "acking delivered message; it may be delivered again")
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
		logger().Error(err, "finishing failed delivery; it will be attempted again")
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
	// The queue holds the DTR body itself (engine.Publisher encodes it).
	if f := sub.PayloadFormat; (f == kubehookv1.PayloadFormatDTR || f == "") && json.Valid(m.Event) {
		return m.Event, payload.ContentTypeDTR, nil
	}
	var ev payload.Event
	if err := json.Unmarshal(m.Event, &ev); err != nil {
		return nil, "", fmt.Errorf("decoding queued event: %w", err)
	}
	return payload.Render(sub.PayloadFormat, ev, m.ID, d.opts.Source)
}

// keepInProgress extends the message's ack wait while a slow attempt runs.
// A timer, not a goroutine: most attempts end long before it fires.
func (d *Dispatcher) keepInProgress(m *queue.Msg) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // the callback reads t
	defer mu.Unlock()
	t = time.AfterFunc(d.opts.ProgressInterval, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = m.InProgress()
		t.Reset(d.opts.ProgressInterval)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}
