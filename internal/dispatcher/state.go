package dispatcher

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/queue"
)

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
