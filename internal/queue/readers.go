package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// linesBucket names the key-value bucket in which every replica says which
// subscriptions' lines it reads.
const linesBucket = "KUBEHOOK_LINES"

// LineReadersTTL is how long an entry lives unless its reader refreshes
// it: a killed replica's entries go after it. Readers refresh theirs well
// within it (LineReaders.Refresh).
const LineReadersTTL = time.Hour

// LineReaders tells every replica which subscriptions are read through
// their own line, by which replicas: a replica that reads a line announces
// it (a key <uid>.<reader> in the bucket KUBEHOOK_LINES), and each replica
// watches the bucket. With several replicas, a subscription that any of
// them reads through its line has all its deliveries go there, so the
// line's consumer window is the one in-flight limit across the replicas.
type LineReaders struct {
	kv   jetstream.KeyValue
	self string

	mu sync.Mutex
	// readers holds, per subscription, when each reader last announced it:
	// an entry older than LineReadersTTL has expired from the bucket, which
	// tells no watcher.
	readers map[types.UID]map[string]time.Time
	now     func() time.Time
	mine    map[types.UID]bool
	watched chan struct{} // closed once the watch has delivered every entry
}

// LineReaders opens the bucket and starts watching it until ctx ends.
func (q *Queue) LineReaders(ctx context.Context) (*LineReaders, error) {
	var kv jetstream.KeyValue
	err := retrying(ctx, "creating key-value bucket "+linesBucket, func() (err error) {
		kv, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      linesBucket,
			Description: "which kubehook replicas read which subscriptions' lines",
			TTL:         LineReadersTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    q.cfg.Replicas,
			History:     1,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: key-value bucket %s: %w", linesBucket, err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	r := &LineReaders{
		kv: kv, self: hex.EncodeToString(id),
		readers: map[types.UID]map[string]time.Time{},
		now:     time.Now,
		mine:    map[types.UID]bool{},
		watched: make(chan struct{}),
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: watching %s: %w", linesBucket, err)
	}
	go r.watch(ctx, w)
	select {
	case <-r.watched:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r, nil
}

// watch folds the bucket's updates in until ctx ends.
func (r *LineReaders) watch(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // every initial value seen
				close(r.watched)
				continue
			}
			r.apply(e)
		}
	}
}

func (r *LineReaders) apply(e jetstream.KeyValueEntry) {
	uid, reader, ok := strings.Cut(e.Key(), ".")
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.readers[types.UID(uid)]
	if e.Operation() == jetstream.KeyValuePut {
		if set == nil {
			set = map[string]time.Time{}
			r.readers[types.UID(uid)] = set
		}
		set[reader] = e.Created()
		return
	}
	delete(set, reader)
	if len(set) == 0 {
		delete(r.readers, types.UID(uid))
	}
}

// Read says whether some replica reads uid's line.
func (r *LineReaders) Read(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mine[uid] {
		return true
	}
	for _, at := range r.readers[uid] {
		if r.live(at) {
			return true
		}
	}
	return false
}

func (r *LineReaders) live(announced time.Time) bool {
	return r.now().Sub(announced) < LineReadersTTL
}

// ReadByOthers says whether a replica other than this one reads uid's line.
func (r *LineReaders) ReadByOthers(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for reader, at := range r.readers[uid] {
		if reader != r.self && r.live(at) {
			return true
		}
	}
	return false
}

func (r *LineReaders) key(uid types.UID) string { return string(uid) + "." + r.self }

// Announce says that this replica reads uid's line. It counts here at once;
// the others see it once the bucket has it.
func (r *LineReaders) Announce(ctx context.Context, uid types.UID) {
	r.mu.Lock()
	r.mine[uid] = true
	r.mu.Unlock()
	if _, err := r.kv.Put(ctx, r.key(uid), nil); err != nil {
		log.FromContext(ctx).Error(err, "announcing a subscription's line to the other replicas", "uid", uid)
	}
}

// Withdraw says that this replica no longer reads uid's line.
func (r *LineReaders) Withdraw(ctx context.Context, uid types.UID) {
	r.mu.Lock()
	delete(r.mine, uid)
	r.mu.Unlock()
	if err := r.kv.Delete(ctx, r.key(uid)); err != nil {
		log.FromContext(ctx).Error(err, "withdrawing a subscription's line from the other replicas", "uid", uid)
	}
}

// Refresh announces again every line this replica reads, so that their
// entries outlive LineReadersTTL, and forgets the expired entries of others.
func (r *LineReaders) Refresh(ctx context.Context) {
	r.mu.Lock()
	for uid, set := range r.readers {
		for reader, at := range set {
			if !r.live(at) {
				delete(set, reader)
			}
		}
		if len(set) == 0 {
			delete(r.readers, uid)
		}
	}
	uids := make([]types.UID, 0, len(r.mine))
	for uid := range r.mine {
		uids = append(uids, uid)
	}
	r.mu.Unlock()
	for _, uid := range uids {
		r.Announce(ctx, uid)
	}
}
