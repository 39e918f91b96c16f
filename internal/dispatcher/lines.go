package dispatcher

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
)

// park moves m to the subscription's own line, starting that line's
// consumer if it is not running.
func (d *Dispatcher) park(ctx context.Context, uid types.UID, st *subState, m *queue.Msg) error {
	st.parkMu.Lock()
	defer st.parkMu.Unlock()
	if err := d.ensureLine(ctx, uid, st); err != nil {
		st.parking.Add(-1)
		return err
	}
	if err := d.parkMsg(st, m); err != nil {
		return err
	}
	metrics.ParkedTotal.Inc()
	return nil
}

// parkMsg moves m to st's line; shutdown waits for the move to finish, so
// no original is left unacked beside its copy.
func (d *Dispatcher) parkMsg(st *subState, m *queue.Msg) error {
	d.wg.Add(1)
	err := m.Park(func() { st.parking.Add(-1); d.wg.Done() })
	if err != nil {
		st.parking.Add(-1)
		d.wg.Done()
	}
	return err
}

// holdDelivery moves m to its subscription's line without a consumer to
// read it: it waits there, in order of arrival, until the subscription can
// be delivered to. Beyond MaxHeld it goes to the dead letters instead.
func (d *Dispatcher) holdDelivery(m *queue.Msg, why string) error {
	d.mu.Lock()
	st := d.state(m.SubscriptionUID, m.Subscription)
	st.parking.Add(1)
	d.mu.Unlock()
	st.parkMu.Lock()
	defer st.parkMu.Unlock()
	if !st.heldKnown {
		n, err := d.queue.ParkedCount(d.sendCtx, m.SubscriptionUID)
		if err != nil {
			st.parking.Add(-1)
			_ = m.Release()
			return err
		}
		st.held, st.heldKnown = n, true
	}
	if st.held >= d.opts.MaxHeld {
		st.parking.Add(-1)
		d.deadLetter(m, queue.ReasonHeldLimit, "more than the limit of held deliveries while "+why)
		return nil
	}
	d.mu.Lock()
	st.parked = true
	d.mu.Unlock()
	if err := d.parkMsg(st, m); err != nil {
		return err
	}
	st.held++
	d.count(m, metrics.ResultHeld)
	return nil
}

// ensureLine starts the consumer of uid's line; parkMu is held.
func (d *Dispatcher) ensureLine(ctx context.Context, uid types.UID, st *subState) error {
	if st.line != nil {
		return nil
	}
	line, err := d.queue.ConsumeParked(ctx, uid, d.lineWindow(), func(m *queue.Msg) { d.handleParked(uid, st, m) })
	if err != nil {
		return err
	}
	if d.opts.Lines != nil {
		d.opts.Lines.Announce(ctx, uid)
	}
	d.mu.Lock()
	st.line = line
	st.parked = true
	st.heldKnown = false
	d.mu.Unlock()
	return nil
}

// lineWindow is the most deliveries a line hands out unacked. Alone, it is
// a few times the in-flight limit, so fetching and acking overlap with
// attempts, and this process's slots bound the attempts. Among replicas it
// is the limit itself: the window is the one count they all share.
func (d *Dispatcher) lineWindow() int {
	if d.opts.Lines != nil {
		return d.opts.PerSubscription
	}
	return 4 * d.opts.PerSubscription
}

// dropLine stops reading uid's line here and deletes its consumer, unless
// another replica reads it: deleting the consumer would hand what that
// replica has in flight out again. A consumer nobody reads is removed by
// the server after its inactive threshold.
func (d *Dispatcher) dropLine(ctx context.Context, uid types.UID, line *queue.Line) {
	if d.opts.Lines == nil {
		line.Delete()
		return
	}
	d.opts.Lines.Withdraw(ctx, uid)
	if d.opts.Lines.ReadByOthers(uid) {
		line.Stop()
		return
	}
	line.Delete()
}

// handleParked runs on a line's consumer goroutine: waiting for a worker
// here delays only this subscription. Meanwhile the delivery is kept in
// progress, so JetStream does not hand it out again.
func (d *Dispatcher) handleParked(uid types.UID, st *subState, m *queue.Msg) {
	sub := d.deliverable(m, st)
	if sub == nil {
		return
	}
	keep := d.keepInProgress(m)
	t, until := d.admitWaiting(st, hostOf(sub.Endpoint))
	keep()
	switch {
	case t != nil && d.stopping.Load():
		d.limits.release(t.grant)
		d.breakers.abandon(t.host, t.probe)
		d.mu.Lock()
		t.releaseSlots()
		d.mu.Unlock()
		_ = m.Release()
	case t != nil:
		d.mu.Lock()
		st.inflight++
		d.mu.Unlock()
		d.startWorker(uid, st, m, t)
	case !until.IsZero():
		d.deferUntil(m, until)
	default: // stopping
		_ = m.Release()
	}
}

// holdLine stops the consumer of a line whose subscription must be held.
// What is unread stays on the line. The consumer is deleted once the
// line's attempts in flight are acked (a stopped client's pull request
// would otherwise keep what the server sends it until the ack wait runs
// out, when the line resumes), unless the line resumed meanwhile.
func (d *Dispatcher) holdLine(uid types.UID, st *subState) {
	st.parkMu.Lock()
	line := st.line
	if line == nil {
		st.parkMu.Unlock()
		return
	}
	line.Stop()
	d.mu.Lock()
	st.line = nil
	d.mu.Unlock()
	st.parkMu.Unlock()

	d.mu.Lock()
	for st.inflight > 0 && !d.stopping.Load() {
		d.idle.Wait()
	}
	d.mu.Unlock()
	st.parkMu.Lock()
	defer st.parkMu.Unlock()
	if st.line == nil && !d.stopping.Load() {
		d.dropLine(d.sendCtx, uid, line)
	}
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
	if st.line == nil || busy || st.parking.Load() > 0 {
		return
	}
	empty, err := d.queue.ParkedEmpty(d.sendCtx, uid)
	if err != nil || !empty {
		return
	}
	d.dropLine(d.sendCtx, uid, st.line)
	d.mu.Lock()
	st.line = nil
	st.parked = false
	d.mu.Unlock()
}

// resumeParked picks up the lines an earlier run left: those of
// subscriptions that can be delivered to are read again, the others stay
// held. A line whose subscription is not registered is read too: each
// delivery on it is judged (dropped if the subscription is gone, the line
// held again if not).
func (d *Dispatcher) resumeParked(ctx context.Context) error {
	uids, err := d.queue.ParkedSubscriptions(ctx)
	if err != nil {
		return err
	}
	for _, uid := range uids {
		var id types.NamespacedName
		sub, ok := d.registry.GetByUID(uid)
		if ok {
			id = sub.ID
		}
		d.mu.Lock()
		st := d.state(uid, id)
		st.parked = true
		d.mu.Unlock()
		if ok && verdictOf(sub).fate == hold {
			continue
		}
		st.parkMu.Lock()
		err := d.ensureLine(ctx, uid, st)
		st.parkMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// tendHeldLines resumes held lines when their subscription changes (resumed,
// fixed, deactivated, deleted), moves held deliveries older than the
// dead-letter retention to the dead letters, and keeps the other replicas
// told which lines are read here, until ctx ends.
func (d *Dispatcher) tendHeldLines(ctx context.Context) {
	expire := time.NewTicker(d.opts.ExpireHeldEvery)
	defer expire.Stop()
	// Among replicas, the lines read here are announced again before their
	// entries expire.
	refresh := time.NewTicker(queue.LineReadersTTL / 3)
	defer refresh.Stop()
	d.expireHeld(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			if d.opts.Lines != nil {
				d.opts.Lines.Refresh(ctx)
			}
		case id := <-d.changes:
			all := d.changesLost.Swap(false)
			d.resumeHeld(ctx, func(st *subState) bool { return all || st.id == id })
		case <-expire.C:
			d.expireHeld(ctx)
		}
	}
}

// heldLines returns the states of held lines that match.
func (d *Dispatcher) heldLines(match func(*subState) bool) map[types.UID]*subState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[types.UID]*subState{}
	for uid, st := range d.subs {
		if st.parked && st.line == nil && match(st) {
			out[uid] = st
		}
	}
	return out
}

// resumeHeld starts reading the held lines that match, unless their
// subscription is still to be held.
func (d *Dispatcher) resumeHeld(ctx context.Context, match func(*subState) bool) {
	for uid, st := range d.heldLines(match) {
		if sub, ok := d.registry.GetByUID(uid); ok && verdictOf(sub).fate == hold {
			continue
		} else if !ok && st.id.Name != "" && !d.gone(st.id, uid) {
			continue // not loaded: stays held
		}
		st.parkMu.Lock()
		if err := d.ensureLine(ctx, uid, st); err != nil {
			log.FromContext(ctx).Error(err, "resuming held deliveries", "subscription", st.id)
		}
		st.parkMu.Unlock()
	}
}

// expireHeld moves the held deliveries older than the dead-letter retention
// to the dead letters.
func (d *Dispatcher) expireHeld(ctx context.Context) {
	cutoff := d.opts.Now().Add(-d.queue.HoldMaxAge())
	for uid, st := range d.heldLines(func(*subState) bool { return true }) {
		st.parkMu.Lock()
		if st.line == nil {
			n, err := d.queue.ExpireHeld(ctx, uid, cutoff)
			if err != nil {
				log.FromContext(ctx).Error(err, "expiring held deliveries", "subscription", st.id)
			}
			if n > 0 {
				metrics.DeadLettersTotal.Add(float64(n))
				st.heldKnown = false
			}
		}
		st.parkMu.Unlock()
	}
}

// stopLines stops every line's fetching at shutdown. Their consumers are
// kept until attempts in flight are acked (deleteLines).
func (d *Dispatcher) stopLines() {
	d.eachLine(func(_ types.UID, st *subState) { st.line.Stop() })
}

// deleteLines deletes the consumers of the lines stopped at shutdown, once
// nothing is in flight.
func (d *Dispatcher) deleteLines() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.eachLine(func(uid types.UID, st *subState) {
		d.dropLine(ctx, uid, st.line)
		st.line = nil
	})
}

// eachLine calls fn, with the state's parkMu held, for every subscription
// whose line has a consumer.
func (d *Dispatcher) eachLine(fn func(types.UID, *subState)) {
	d.mu.Lock()
	states := make(map[types.UID]*subState, len(d.subs))
	for uid, st := range d.subs {
		states[uid] = st
	}
	d.mu.Unlock()
	for uid, st := range states {
		st.parkMu.Lock()
		if st.line != nil {
			fn(uid, st)
		}
		st.parkMu.Unlock()
	}
}
