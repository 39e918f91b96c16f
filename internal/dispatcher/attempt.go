package dispatcher

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/retry"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// attempt makes one delivery attempt and finishes the message: acked on
// success, rescheduled on failure, dead-lettered when exhausted. The
// subscription is judged again first: it may have changed since the
// delivery was fetched. It reports whether an attempt was made and
// succeeded, and tells t's host's breaker what the attempt showed.
func (d *Dispatcher) attempt(m *queue.Msg, t *ticket) (attempted, ok bool) {
	probed := false // the breaker heard of the probe
	defer func() {
		if !probed {
			d.breakers.abandon(t.host, t.probe)
		}
	}()
	ctx := d.sendCtx
	// Built only when there is something to log: attempts are the hot path.
	logger := func() logr.Logger {
		return log.FromContext(ctx).WithValues("delivery", m.ID, "subscription", m.Subscription)
	}
	sub, v := d.judge(m)
	switch v.fate {
	case deliver:
	case hold:
		// Back to where it came from, where it is judged again and held.
		_ = m.Release()
		return false, false
	default:
		d.apply(m, v, nil)
		return false, false
	}

	body, contentType, err := d.render(sub, m)
	if err != nil {
		// The queue only holds what a source accepted; this is a bug, kept for replay.
		d.deadLetter(m, queue.ReasonUnrenderable, err.Error())
		return false, false
	}

	stop := d.keepInProgress(m)
	start := d.opts.Now()
	res := d.sender.Send(ctx, sub, sender.Request{ID: m.ID, Timestamp: start, Body: body, ContentType: contentType})
	stop()
	if !res.OK() && ctx.Err() != nil {
		// Cancelled by shutdown: not the endpoint's failure. Back to the
		// queue unchanged, for the next start.
		_ = m.Release()
		return false, false
	}
	now := d.opts.Now()
	metrics.DeliveryDuration.WithLabelValues(m.EventType).Observe(res.Duration.Seconds())

	out := Outcome{
		Subscription: m.Subscription, UID: m.SubscriptionUID, DeliveryID: m.ID,
		At: now, Attempts: m.Attempts + 1, OK: res.OK(), StatusCode: res.StatusCode,
	}
	probed = true
	out.CircuitOpenUntil = d.recordHost(t, sub.Endpoint, healthOf(res))
	if res.OK() {
		d.count(m, metrics.ResultSuccess)
		// Not waiting for the server's confirmation: the queue awaits it,
		// and sends the ack again should it be lost.
		if err := m.DoneAsync(); err != nil {
			logger().Error(err, "acking delivered message; it may be delivered again")
		}
		d.reporter.Report(out)
		return true, true
	}

	if res.Err != nil {
		out.Message = res.Err.Error()
	}
	// Only 410 Gone deactivates here; a failure streak longer than
	// deactivateAfter is judged by the status writer, which holds the one
	// streak every replica shares.
	switch {
	case retry.ShouldDeactivate(sub.Delivery, time.Time{}, now, res.StatusCode):
		out.Deactivated = true
		// Report first: a reconcile racing with this reads the deactivation
		// from the tracker rather than re-registering the entry as active.
		d.reporter.Report(out)
		d.registry.Deactivate(sub.ID, sub.UID)
		d.count(m, metrics.ResultDeactivate)
		metrics.DeadLettersTotal.Inc()
		err = m.DeadLetter(ctx, queue.ReasonDeactivated, "subscription deactivated: "+out.Message)
	case retry.Exhausted(sub.Delivery, out.Attempts):
		out.DeadLettered = true
		d.count(m, metrics.ResultDeadLetter)
		metrics.DeadLettersTotal.Inc()
		err = m.DeadLetter(ctx, queue.ReasonExhausted, fmt.Sprintf("gave up after %d attempts: %s", out.Attempts, out.Message))
	default:
		delay := retry.Delay(sub.Delivery, out.Attempts, res.RetryAfter, d.opts.Rand())
		d.count(m, metrics.ResultRetry)
		err = m.Retry(ctx, now.Add(delay), out.Attempts)
	}
	if err != nil {
		logger().Error(err, "finishing failed delivery; it will be attempted again")
	}
	if !out.Deactivated {
		d.reporter.Report(out)
	}
	return true, false
}

// recordHost tells the breaker of the host the attempt went to what it
// showed, and returns when that breaker half-opens if it is open. The host
// is that of the endpoint sent to: should the subscription's endpoint have
// changed since t was admitted, t's probe is given back and the result
// counts for the new host.
func (d *Dispatcher) recordHost(t *ticket, endpoint string, h hostHealth) time.Time {
	host := hostOf(endpoint)
	if host != t.host {
		d.breakers.abandon(t.host, t.probe)
		return d.breakers.done(host, false, h)
	}
	return d.breakers.done(host, t.probe, h)
}

// render returns the request body of m for sub and its content type.
func (d *Dispatcher) render(sub *subscriptions.Subscription, m *queue.Msg) ([]byte, string, error) {
	// The queue holds the DTR body itself, sent as is and not checked again
	// on every attempt: intake.Publisher encoded it with
	// payload.Event.MarshalJSON, which compacts its contents and so refuses
	// any that are not JSON, and retries, parking and replays copy those
	// bytes.
	if f := sub.PayloadFormat; f == kubehookv1.PayloadFormatDTR || f == "" {
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
