package dispatcher

import (
	"context"
	"math/rand/v2"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/metrics"
)

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
