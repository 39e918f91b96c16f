// Package dispatcher moves deliveries from the queue to the sender, one
// subscription isolated from another, and reports each outcome. It decides
// nothing about a subscription itself: what becomes of a delivery (attempt,
// hold, dead letter, drop) is the registry entry's Fate, and a subscription
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
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/metrics"
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
	// Deactivated: this failure (410 Gone) made the subscription inactive.
	Deactivated bool
	// DeadLettered: the delivery exhausted its attempts.
	DeadLettered bool
	// CircuitOpenUntil is set when, after this attempt, the circuit breaker
	// of the endpoint's host is open: no delivery to that host is attempted
	// until then, when one probe attempt goes. Zero while it is closed.
	CircuitOpenUntil time.Time
}

// Options tune the dispatcher.
type Options struct {
	// Concurrency bounds the attempts in flight across all subscriptions.
	Concurrency int
	// PerSubscription bounds the attempts in flight for one healthy
	// subscription (its last attempt succeeded).
	PerSubscription int
	// FailingPerSubscription bounds the attempts in flight for one
	// subscription whose last attempt failed. Default 2 (at most
	// PerSubscription).
	FailingPerSubscription int
	// FailingConcurrency bounds the attempts in flight, together, of the
	// subscriptions not known to be healthy: those whose last attempt
	// failed, and those with no attempt finished yet (new, or idle for an
	// hour) beyond their first attempt, so that hanging endpoints hold at
	// most this share of the pool. Default half of Concurrency.
	FailingConcurrency int
	// PerHost bounds the attempts in flight to one endpoint host (host and
	// port of the endpoint URL), across subscriptions. Default 32; at
	// Concurrency or more, the pool alone bounds them.
	PerHost int
	// BreakerThreshold is the number of consecutive failed attempts to one
	// endpoint host (no answer, timeouts, 5xx) that opens its circuit
	// breaker. Default 10; negative turns the breakers off.
	BreakerThreshold int
	// BreakerCooldown is how long a breaker stays open before its probe;
	// each failed probe doubles it, up to BreakerMaxCooldown. Defaults 10s
	// and 5m.
	BreakerCooldown    time.Duration
	BreakerMaxCooldown time.Duration
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
	// Loaded returns once the registry reflects every subscription of the
	// cluster; nothing is consumed before. Nil: at once.
	Loaded func(context.Context) error
	// Exists tells whether the object of a subscription with that UID
	// still exists, asking the API server. A delivery whose subscription is
	// not registered is dropped only when Exists says no; when it cannot
	// tell, the delivery is held. Nil counts every unregistered
	// subscription as gone (for engines without an API server).
	Exists func(ctx context.Context, id types.NamespacedName, uid types.UID) (bool, error)
	// MaxHeld bounds the held deliveries of one subscription; more go to
	// its dead letters.
	MaxHeld int64
	// ExpireHeldEvery is how often held deliveries older than the
	// dead-letter retention are moved to the dead letters.
	ExpireHeldEvery time.Duration
	// Lines is set when several replicas share the queue. Each then starts
	// at most one attempt of a subscription from the shared consumer, and a
	// subscription that needs more, on any replica, has all its deliveries
	// read through its line, whose consumer window is PerSubscription: one
	// limit across the replicas. Nil: this process is the only consumer,
	// and PerSubscription bounds its attempts from either consumer.
	Lines LineReaders
	// PerSubscriptionMetrics, when set, also counts deliveries by
	// subscription (kubehook_subscription_deliveries_total); nil: by event
	// type only.
	PerSubscriptionMetrics *metrics.PerSubscription
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 256
	}
	if o.PerSubscription <= 0 {
		o.PerSubscription = 8
	}
	if o.FailingPerSubscription <= 0 {
		o.FailingPerSubscription = 2
	}
	o.FailingPerSubscription = min(o.FailingPerSubscription, o.PerSubscription)
	if o.FailingConcurrency <= 0 {
		o.FailingConcurrency = max(1, o.Concurrency/2)
	}
	o.FailingConcurrency = min(o.FailingConcurrency, o.Concurrency)
	if o.PerHost <= 0 {
		o.PerHost = 32
	}
	if o.BreakerThreshold == 0 {
		o.BreakerThreshold = 10
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 10 * time.Second
	}
	if o.BreakerMaxCooldown <= 0 {
		o.BreakerMaxCooldown = 5 * time.Minute
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
	if o.MaxHeld <= 0 {
		o.MaxHeld = 100_000
	}
	if o.ExpireHeldEvery <= 0 {
		o.ExpireHeldEvery = time.Hour
	}
	return o
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

// healthTTL is how long the class of a subscription with no attempt is
// remembered; after that it is unproven again.
const healthTTL = time.Hour

// subState is the dispatcher's view of one subscription.
type subState struct {
	id types.NamespacedName
	// slots holds one token per attempt in flight, up to the limit, and
	// failSlots one per attempt made while the subscription was not
	// healthy: the shared consumer takes them only if they are free
	// at once, a parked line's consumer waits for them (it holds up only
	// its own subscription).
	slots, failSlots chan struct{}
	inflight         int
	// class says whether its last attempt succeeded (healthy), failed, or
	// none has finished (unproven); reclassed is closed, and replaced, when
	// it changes, so the line's consumer waits in the current class.
	class     class
	reclassed chan struct{}
	// parked is set while the subscription's deliveries go to its own line:
	// read by line while it is delivered to, unread (held) while line is
	// nil. parkMu orders parking against unparking, so no delivery is
	// parked for a subscription without a consumer unless it is held.
	parked bool
	parkMu sync.Mutex
	line   *queue.Line
	// held counts the deliveries held on the line (known once heldKnown).
	held      int64
	heldKnown bool
	// parking counts copies on their way to the line, not yet stored.
	parking atomic.Int64
	// unpark fires UnparkAfter after the parked line last went idle.
	unpark *time.Timer
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
	// Every attempt is acked or released: the lines' consumers can go, so
	// what they had fetched is handed out at once to the next reader.
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
	if d.stopping.Load() {
		_ = m.Release()
		return
	}
	sub, v := d.judge(m)
	if v.fate != deliver {
		d.apply(m, v, nil)
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

func (d *Dispatcher) state(uid types.UID, id types.NamespacedName) *subState {
	st := d.subs[uid]
	if st == nil {
		st = &subState{
			id:        id,
			slots:     make(chan struct{}, d.opts.PerSubscription),
			failSlots: make(chan struct{}, d.opts.FailingPerSubscription),
			reclassed: make(chan struct{}),
		}
		st.class = unproven
		if c, ok := d.health.Get(uid); ok {
			st.class = c.(class)
		}
		d.subs[uid] = st
	}
	if st.id.Name == "" {
		st.id = id
	}
	return st
}

// forget drops the state of a subscription with nothing in flight or
// parked, remembering its class; mu is held.
func (d *Dispatcher) forget(uid types.UID, st *subState) {
	delete(d.subs, uid)
	if st.class != unproven {
		d.health.Add(uid, st.class, healthTTL)
	}
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
