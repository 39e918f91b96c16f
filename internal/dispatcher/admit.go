package dispatcher

import (
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
)

// ticket is what one admitted attempt holds: its subscription's slots, the
// shared workers, and its host's probe when the breaker is half-open.
type ticket struct {
	st *subState
	*grant
	// failSlot: it holds one of st.failSlots, as an attempt of a failing
	// subscription.
	failSlot bool
	probe    bool
}

// releaseSlots frees the subscription's slots of t.
func (t *ticket) releaseSlots() { releaseSubSlots(t.st, t.failSlot) }

func releaseSubSlots(st *subState, failSlot bool) {
	<-st.slots
	if failSlot {
		<-st.failSlots
	}
}

// inShare says whether an attempt of a subscription of class c with
// inflight attempts under way counts against the share of the pool the
// subscriptions not known to be healthy hold. The first attempt of an
// unproven one does not: however many failing subscriptions fill the
// share, a new one can prove itself.
func inShare(c class, inflight int) bool {
	return c == failing || (c == unproven && inflight > 0)
}

// tryAdmit admits an attempt of st's subscription to host if its
// subscription's and host's limits (and the share, for an attempt in it)
// have room at once; mu is held. The ticket may lack its worker of the pool
// still: the caller waits for it (limits.awaitPool). Without a ticket, a
// non-zero time says the host's breaker is open until then; zero says wait
// (on a line).
func (d *Dispatcher) tryAdmit(st *subState, host string) (*ticket, time.Time) {
	select {
	case st.slots <- struct{}{}:
	default:
		return nil, time.Time{}
	}
	c, failSlot := st.class, st.class == failing
	if failSlot {
		select {
		case st.failSlots <- struct{}{}:
		default:
			<-st.slots
			return nil, time.Time{}
		}
	}
	g, ok := d.limits.tryReserve(host, inShare(c, st.inflight))
	if !ok {
		releaseSubSlots(st, failSlot)
		return nil, time.Time{}
	}
	t := &ticket{st: st, grant: g, failSlot: failSlot}
	switch gt, until, _ := d.breakers.admit(host); gt {
	case pass:
	case probe:
		t.probe = true
	default:
		d.limits.release(g)
		releaseSubSlots(st, failSlot)
		return nil, until
	}
	return t, time.Time{}
}

// admitWaiting admits an attempt of st's subscription to host, waiting for
// room on every limit and for the probe of a half-open breaker to end; it
// runs on the subscription's line, so waiting holds up only that
// subscription. It waits in the subscription's current class: when an
// attempt's end changes it, the wait starts again in the new one. Without
// a ticket, a non-zero time says the breaker is open until then; zero says
// the dispatcher is stopping.
func (d *Dispatcher) admitWaiting(st *subState, host string) (*ticket, time.Time) {
	for {
		switch g, until, changed := d.breakers.peek(host); g {
		case shut:
			return nil, until
		case wait:
			select {
			case <-changed:
				continue
			case <-d.stop:
				return nil, time.Time{}
			}
		}
		select {
		case st.slots <- struct{}{}:
		case <-d.stop:
			return nil, time.Time{}
		}
		d.mu.Lock()
		c, shared, reclassed := st.class, inShare(st.class, st.inflight), st.reclassed
		d.mu.Unlock()
		failSlot := c == failing
		if failSlot {
			select {
			case st.failSlots <- struct{}{}:
			case <-d.stop:
				<-st.slots
				return nil, time.Time{}
			case <-reclassed:
				<-st.slots
				continue
			}
		}
		g, ok := d.limits.acquire(host, shared, d.stop, reclassed)
		if !ok {
			releaseSubSlots(st, failSlot)
			if d.stopping.Load() {
				return nil, time.Time{}
			}
			continue // reclassed
		}
		gt, until, changed := d.breakers.admit(host)
		switch gt {
		case pass, probe:
			return &ticket{st: st, grant: g, failSlot: failSlot, probe: gt == probe}, time.Time{}
		}
		d.limits.release(g)
		releaseSubSlots(st, failSlot)
		if gt == shut {
			return nil, until
		}
		select {
		case <-changed:
		case <-d.stop:
			return nil, time.Time{}
		}
	}
}

// deferUntil gives m back to the queue for when its host's breaker
// half-opens: a retry schedule carrying the attempts made so far, so no
// attempt is counted and nothing is dead-lettered for the breaker alone.
// The schedule is durable; m is acked once it is stored. Not on the
// caller's goroutine: the shared consumer does not wait for the round trip.
func (d *Dispatcher) deferUntil(m *queue.Msg, until time.Time) {
	metrics.CircuitBreakerDeferred.Inc()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := m.Retry(d.sendCtx, until, m.Attempts); err != nil {
			log.FromContext(d.sendCtx).Error(err, "deferring a delivery while its endpoint's circuit breaker is open; it will come back", "delivery", m.ID)
		}
	}()
}

// healthOf says what an attempt's result tells about the endpoint's host.
func healthOf(res sender.Result) hostHealth {
	switch {
	case res.NotSent:
		return hostUnknown
	case res.StatusCode == 0, res.StatusCode >= 500:
		return hostDown
	}
	return hostUp
}
