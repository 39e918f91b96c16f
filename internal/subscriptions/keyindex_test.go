package subscriptions

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The index behaves as a map from key to a set of entries, through growth,
// long keys, shared keys and removals that shift probe runs back: checked
// against a map after every operation of a long random sequence.
func TestKeyIndexAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := newKeyIndex()
	model := map[string][]*Subscription{}
	keys := make([]string, 300)
	for i := range keys {
		switch i % 3 {
		case 0:
			keys[i] = fmt.Sprintf("ns%d", i)
		case 1:
			keys[i] = fmt.Sprintf("ns%d/repo%d", i%7, i)
		default: // longer than inlineKey
			keys[i] = fmt.Sprintf("ns%d/%s/repo%d", i%5, strings.Repeat("deep/", 8), i)
		}
	}
	keys = append(keys, "")
	var subs []*Subscription
	for step := range 20_000 {
		key := keys[rng.IntN(len(keys))]
		if rng.IntN(3) > 0 || len(model[key]) == 0 {
			s := &Subscription{Key: key}
			subs = append(subs, s)
			x.add(key, matchEntry{t: 1, sub: s})
			model[key] = append(model[key], s)
		} else {
			list := model[key]
			i := rng.IntN(len(list))
			if !x.remove(key, list[i]) {
				t.Fatalf("step %d: entry of %q not removed", step, key)
			}
			model[key] = append(list[:i], list[i+1:]...)
			if len(model[key]) == 0 {
				delete(model, key)
			}
		}
		if x.count != len(model) {
			t.Fatalf("step %d: %d keys, want %d", step, x.count, len(model))
		}
		if step%97 == 0 || step > 19_900 {
			checkAgainst(t, &x, model, keys)
		}
	}
	// A subscription that is not there is not removed.
	if x.remove(keys[0], &Subscription{}) || x.remove("absent/key", subs[0]) {
		t.Fatal("removed an entry that was not there")
	}
}

func checkAgainst(t *testing.T, x *keyIndex, model map[string][]*Subscription, keys []string) {
	t.Helper()
	for _, key := range keys {
		s := x.find(key)
		want := model[key]
		if s == nil {
			if len(want) != 0 {
				t.Fatalf("%q not found, want %d entries", key, len(want))
			}
			continue
		}
		if s.key() != key {
			t.Fatalf("looking up %q found %q", key, s.key())
		}
		var got []*Subscription
		s.entries(func(e matchEntry) { got = append(got, e.sub) })
		if len(got) != len(want) {
			t.Fatalf("%q: %d entries, want %d", key, len(got), len(want))
		}
		seen := map[*Subscription]bool{}
		for _, g := range got {
			seen[g] = true
		}
		for _, w := range want {
			if !seen[w] {
				t.Fatalf("%q: an entry is missing", key)
			}
		}
	}
}

// entries calls fn for every entry of the slot.
func (s *slot) entries(fn func(matchEntry)) {
	fn(s.first)
	if s.ext != nil {
		for _, e := range s.ext.more {
			fn(e)
		}
	}
}
