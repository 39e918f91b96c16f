// Package dispatcher moves deliveries from the queue to the sender, one
// subscription isolated from another, and reports each outcome. It decides
// nothing about a subscription itself: what becomes of a delivery (attempt,
// hold, dead letter, drop) is the subscription entry's Fate, and a subscription
// counts as gone only when the API server has no object with its UID.
//
// Isolation: an attempt starts only with a worker to spare on every limit
// it falls under: its subscription's in-flight limit, the per-host limit of
// its endpoint's host (host:port), and the pool (Concurrency). A
// subscription whose last attempt failed has a smaller in-flight limit
// (FailingPerSubscription), and the attempts of subscriptions not known to
// be healthy (failing ones, and those with no attempt finished yet beyond
// their first) hold at most a share of the pool (FailingConcurrency).
// Healthy subscriptions therefore always find workers, whatever number of
// endpoints hang, and a new subscription's first attempt never waits for
// failing ones. Health is kept in this process's memory, per subscription.
//
// The shared consumer never waits for a busy subscription or host. When a
// delivery's subscription, host or share has no room, its subscription is
// "parked": its deliveries are moved, once each, to a line of its own in
// the queue, read by a consumer whose window is a few times the
// subscription's limit and which waits for workers (holding up only its own
// subscription). Its backlog waits on disk, not in memory and not in front
// of the other subscriptions. A parked subscription whose line runs empty
// goes back to the shared consumer. When only the pool is full, nothing
// could start anywhere: the shared consumer waits a moment for a worker
// rather than parking, as long as the pool's attempts end.
//
// Among replicas (Options.Lines) the in-flight limit is one for them all:
// each replica starts at most one attempt of a subscription from the
// shared consumer, and once any replica reads a subscription's line every
// replica moves that subscription's deliveries there. The line's consumer
// window is the limit, and JetStream keeps it across the replicas.
//
// Circuit breakers: after consecutive failed attempts to one endpoint host
// (no answer, timeouts, 5xx) its breaker opens for a cool-down; its
// deliveries are then not attempted but scheduled again for when it
// half-opens, with no attempt counted, so the breaker alone never
// dead-letters anything. Then one probe attempt goes; its success closes
// the breaker, its failure doubles the cool-down (up to a cap).
//
// Holding: the deliveries of a suspended or stalled subscription (or one
// not loaded yet) go to the same line, with no consumer reading it, and wait
// there in order of arrival until the subscription can be delivered to.
package dispatcher

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// Sender makes exactly one HTTP attempt.
type Sender interface {
	Send(ctx context.Context, sub *subscriptions.Subscription, req sender.Request) sender.Result
}

// LineReaders tells the replicas of a cluster which subscriptions are read
// through their own line (queue.LineReaders).
type LineReaders interface {
	// Read says whether some replica reads uid's line.
	Read(uid types.UID) bool
	// ReadByOthers says whether another replica reads it.
	ReadByOthers(uid types.UID) bool
	// Announce and Withdraw say that this replica starts and stops reading
	// it; Refresh announces again what it reads, before the entries expire.
	Announce(ctx context.Context, uid types.UID)
	Withdraw(ctx context.Context, uid types.UID)
	Refresh(ctx context.Context)
}

// Dispatcher consumes the queue and delivers. It is a manager.Runnable.
type Dispatcher struct {
	queue    *queue.Queue
	registry *subscriptions.Registry
	sender   Sender
	reporter Reporter
	opts     Options

	// limits are the workers shared by the subscriptions; breakers say
	// which endpoint hosts are not to be attempted.
	limits   *limits
	breakers *breakers
	wg       sync.WaitGroup
	// stopping is set, and stop closed, once fetching has stopped: no new
	// attempts start.
	stopping atomic.Bool
	stop     chan struct{}

	mu   sync.Mutex
	subs map[types.UID]*subState
	// idle is signalled (with mu) when a subscription's last attempt in
	// flight ends, and at shutdown.
	idle *sync.Cond
	// sendCtx outlives the consume context by the grace period.
	sendCtx context.Context

	// changes carries registry changes to the goroutine that resumes held
	// lines; changesLost is set when it was full.
	changes     chan types.NamespacedName
	changesLost atomic.Bool
	// existence remembers the API server's verdicts on unregistered
	// subscriptions: gone for long (a UID never comes back), present briefly.
	existence *cache.LRUExpireCache
	// health remembers the class of subscriptions beyond the life of their
	// state, so a healthy subscription idle for a moment keeps its full
	// limit, and a failing one stays limited.
	health *cache.LRUExpireCache
}

// New returns a dispatcher; Start runs it.
func New(q *queue.Queue, reg *subscriptions.Registry, s Sender, r Reporter, o Options) *Dispatcher {
	o = o.withDefaults()
	d := &Dispatcher{
		queue: q, registry: reg, sender: s, reporter: r, opts: o,
		limits:    newLimits(o.Concurrency, o.FailingConcurrency, o.PerHost),
		breakers:  newBreakers(max(o.BreakerThreshold, 0), o.BreakerCooldown, o.BreakerMaxCooldown, o.Now),
		stop:      make(chan struct{}),
		subs:      map[types.UID]*subState{},
		changes:   make(chan types.NamespacedName, 1024),
		existence: cache.NewLRUExpireCache(4096),
		health:    cache.NewLRUExpireCache(1 << 16),
	}
	d.idle = sync.NewCond(&d.mu)
	reg.OnChange(func(id types.NamespacedName) {
		select {
		case d.changes <- id:
		default:
			d.changesLost.Store(true)
		}
	})
	return d
}

// Start consumes until ctx ends, then lets in-flight attempts finish within
// the grace period. Deliveries not yet attempted stay unacked in the queue;
// an attempt cancelled at the end of the grace period goes back unchanged.
func (d *Dispatcher) Start(ctx context.Context) error {
	sendCtx, cancelSends := context.WithCancel(context.Background())
	defer cancelSends()
	d.sendCtx = log.IntoContext(sendCtx, log.FromContext(ctx))

	// Judging a delivery before the registry is loaded would take every
	// subscription for one that is not registered.
	if d.opts.Loaded != nil {
		if err := d.opts.Loaded(ctx); err != nil {
			return nil // stopped before loading finished: nothing consumed
		}
	}
	if err := d.resumeParked(ctx); err != nil {
		return err
	}
	linesDone := make(chan struct{})
	go func() { defer close(linesDone); d.tendHeldLines(ctx) }()

	err := d.queue.Consume(ctx, d.handle)
	d.mu.Lock()
	d.stopping.Store(true)
	d.idle.Broadcast()
	d.mu.Unlock()
	close(d.stop)
	// Lines stop fetching, but their consumers stay until in-flight
	// attempts are acked.
	d.stopLines()
	<-linesDone

	// Stop: in-flight attempts get the grace period, then are cancelled.
	finished := make(chan struct{})
	go func() { d.wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(d.opts.GracePeriod):
		cancelSends()
		<-finished
	}
	// Every attempt is acked or released, once the acks sent are confirmed:
	// the lines' consumers can go, so what they had fetched is handed out
	// at once to the next reader.
	acked, cancelAcked := context.WithTimeout(context.Background(), 5*time.Second)
	if err := d.queue.AwaitAcks(acked); err != nil {
		log.FromContext(ctx).Error(err, "stopping with acks unconfirmed; their deliveries may be delivered again")
	}
	cancelAcked()
	d.deleteLines()
	d.breakers.forgetAll()
	return err
}

// handle runs on the shared consumer's goroutine: it never waits on a
// busy subscription or host. A delivery whose subscription, host or share
// has no room is parked on its subscription's line, whose consumer may
// wait: a negative ack would hand it straight back (the queue offers no
// delay shorter than a retry schedule's second), a retry schedule would
// reorder it and cost a second, and waiting here would hold up every
// subscription.
//
// When only the pool is full, no delivery of any subscription can start
// before a worker frees, however it waits; handle waits for one itself
// (in order of arrival with the lines' waiters), so the consumer takes from
// the queue only what the pool can start. Parking it instead would cost two
// more writes to the store, and keep the subscription on its line (and a
// consumer of its own) for as long as deliveries keep coming. It waits only
// while the pool's attempts end (limits.awaitPool): a pool held by slow
// attempts holds nobody up here, its deliveries are parked as before.
func (d *Dispatcher) handle(m *queue.Msg) {
	sub := d.deliverable(m, nil)
	if sub == nil {
		return
	}
	host := hostOf(sub.Endpoint)
	if g, until, _ := d.breakers.peek(host); g == shut {
		d.deferUntil(m, until)
		return
	}
	d.mu.Lock()
	st := d.state(sub.UID, sub.ID)
	if !st.parked && d.sharedAdmits(sub.UID, st) {
		t, until := d.tryAdmit(st, host)
		if t != nil {
			st.inflight++
			d.mu.Unlock()
			if d.limits.awaitPool(t.grant, d.stop) || d.stopping.Load() {
				// Without a worker at shutdown, work gives m back.
				d.startWorker(sub.UID, st, m, t)
				return
			}
			d.limits.release(t.grant)
			d.breakers.abandon(t.host, t.probe)
			d.mu.Lock()
			t.releaseSlots()
			if st.inflight--; st.inflight == 0 {
				d.idle.Broadcast()
			}
		} else if !until.IsZero() {
			d.mu.Unlock()
			d.deferUntil(m, until)
			return
		}
	}
	// Counted before unlocking, so work does not forget this state while
	// the delivery is on its way to the line.
	st.parking.Add(1)
	d.mu.Unlock()
	if err := d.park(d.sendCtx, sub.UID, st, m); err != nil {
		log.FromContext(d.sendCtx).Error(err, "parking a delivery for a busy subscription; it will come back", "delivery", m.ID)
	}
}

// sharedAdmits says whether a delivery of uid from the shared consumer may
// be attempted at once; mu is held. Alone, this process keeps every limit
// itself. Among replicas only a subscription's line bounds its attempts
// across them all, so from the shared consumer each replica starts one at
// most, and none once any replica reads the line.
func (d *Dispatcher) sharedAdmits(uid types.UID, st *subState) bool {
	if d.opts.Lines == nil {
		return true
	}
	return st.inflight == 0 && !d.opts.Lines.Read(uid)
}

func (d *Dispatcher) startWorker(uid types.UID, st *subState, m *queue.Msg, t *ticket) {
	d.wg.Add(1)
	go d.work(uid, st, m, t)
}

// work makes one attempt, then frees what it held; the last attempt of a
// parked subscription checks whether its line ran empty.
func (d *Dispatcher) work(uid types.UID, st *subState, m *queue.Msg, t *ticket) {
	defer d.wg.Done()
	attempted, ok := false, false
	if t.pooled {
		attempted, ok = d.attempt(m, t)
	} else {
		// Stopped before a worker freed: back to the queue unchanged.
		d.breakers.abandon(t.host, t.probe)
		_ = m.Release()
	}
	d.limits.release(t.grant)
	d.mu.Lock()
	t.releaseSlots()
	if attempted {
		c := failing
		if ok {
			c = healthy
		}
		if c != st.class {
			st.class = c
			close(st.reclassed)
			st.reclassed = make(chan struct{})
		}
	}
	st.inflight--
	idle := st.inflight == 0
	if idle {
		d.idle.Broadcast()
	}
	if idle && !st.parked && st.parking.Load() == 0 && d.subs[uid] == st {
		d.forget(uid, st)
	}
	if idle && st.parked && st.line != nil && !d.stopping.Load() {
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

// CircuitOpenUntil returns when the circuit breaker of endpoint's host
// half-opens, zero when it is not open: for the status of every
// subscription to that host, not only of those whose attempt opened it.
func (d *Dispatcher) CircuitOpenUntil(endpoint string) time.Time {
	return d.breakers.openUntil(hostOf(endpoint))
}
