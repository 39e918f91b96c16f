package queue

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
)

// Two replicas' views of one bucket: what one announces the other sees,
// a withdrawal clears it, and an entry not refreshed within the TTL no
// longer counts.
func TestLineReadersAreSharedBetweenReplicas(t *testing.T) {
	g := NewWithT(t)
	q := openTest(t, t.TempDir(), time.Minute)
	defer q.Close()
	a, err := q.LineReaders(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	b, err := q.LineReaders(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	const uid = types.UID("0b6f3a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b")

	g.Expect(b.Read(uid)).To(BeFalse())
	a.Announce(t.Context(), uid)
	g.Expect(a.Read(uid)).To(BeTrue(), "its own announcement counts at once")
	g.Eventually(func() bool { return b.Read(uid) && b.ReadByOthers(uid) }).Should(BeTrue())
	g.Eventually(func() bool { return a.ReadByOthers(uid) }).Should(BeFalse(), "a replica is not another reader of its own line")

	a.Withdraw(t.Context(), uid)
	g.Eventually(func() bool { return b.Read(uid) }).Should(BeFalse())

	// A replica that died announced and never withdrew: its entry ages out.
	a.Announce(t.Context(), uid)
	g.Eventually(func() bool { return b.Read(uid) }).Should(BeTrue())
	later := time.Now().Add(LineReadersTTL)
	b.mu.Lock()
	b.now = func() time.Time { return later }
	b.mu.Unlock()
	g.Expect(b.Read(uid)).To(BeFalse())
	b.Refresh(t.Context())
	b.mu.Lock()
	g.Expect(b.readers).To(BeEmpty(), "refreshing forgets expired entries")
	b.mu.Unlock()

	// A view opened later starts from what the bucket holds.
	c, err := q.LineReaders(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.ReadByOthers(uid)).To(BeTrue())
}
