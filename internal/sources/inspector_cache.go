package sources

import (
	"context"
	"fmt"
	"math"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// neverExpires is the TTL of a successful inspection: what a digest names
// does not change.
const neverExpires = time.Duration(math.MaxInt64)

// clockFunc is InspectorOptions.Now as the caches' clock, so that a test's
// clock ages failures too.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// inspect answers from memory when it can (a past inspection of the digest,
// a recent failure of repository@digest), else fetches, one fetch for all
// the concurrent inspections of repository@digest. The fetch is detached
// from the caller, bounded by the timeout: a registry that gave up on a
// slow answer retries its notification and finds the result.
func (i *RemoteInspector) inspect(ctx context.Context, repository, digest string) (inspection, error) {
	if _, err := v1.NewHash(digest); err != nil {
		return inspection{}, fmt.Errorf("inspecting %s@%s: %w", repository, digest, err)
	}
	key := repository + "@" + digest
	if res, ok, err := i.remembered(key, digest); ok {
		return res, err
	}
	call := i.calls.DoChan(key, func() (any, error) {
		// Asked again: a call that ended since the look-up above has left
		// its answer here, and it is not fetched twice.
		if res, ok, err := i.remembered(key, digest); ok {
			return res, err
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.opts.Timeout)
		defer cancel()
		res, err := i.fetch(fctx, repository, digest)
		if err != nil {
			i.failures.Add(key, err, i.opts.FailureTTL)
			return inspection{}, err
		}
		i.results.Add(digest, res, neverExpires)
		return res, nil
	})
	select {
	case r := <-call:
		return r.Val.(inspection), r.Err
	case <-ctx.Done():
		return inspection{}, fmt.Errorf("inspecting %s: %w", key, ctx.Err())
	}
}

// remembered returns the inspection of digest, or the error of a failed
// inspection of key (repository@digest) younger than FailureTTL; ok is
// false when neither is held.
func (i *RemoteInspector) remembered(key, digest string) (res inspection, ok bool, err error) {
	if v, ok := i.results.Get(digest); ok {
		return v.(inspection), true, nil
	}
	if v, ok := i.failures.Get(key); ok {
		return inspection{}, true, v.(error)
	}
	return inspection{}, false, nil
}
