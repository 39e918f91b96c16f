package subscriptions

import (
	"hash/maphash"
	"unsafe"
)

// keyIndex maps subscription keys to their match entries. It is an
// open-addressing table with linear probing whose slots are one cache line
// each and hold, inline, the key (when short), its hash and its first entry:
// a lookup usually touches one cache line. A Go map touches at least two at
// 100,000 keys (its slot, and the key's bytes held elsewhere), and lookup
// cost is what matching at that scale is made of.
type keyIndex struct {
	seed  maphash.Seed
	slots []slot // a power of two; nil when empty
	count int
}

// inlineKey is the longest key kept inside its slot; longer ones live in
// the slot's extension.
const inlineKey = 31

// slot is one key. tag is the key's hash with the low bit set, 0 marks an
// empty slot. 64 bytes: a cache line.
type slot struct {
	tag   uint64
	first matchEntry
	// ext holds the entries after the first, and a key longer than inlineKey.
	ext  *slotExt
	klen uint8 // inlineKey+1 marks a key held in ext
	kbuf [inlineKey]byte
}

type slotExt struct {
	more []matchEntry
	key  string
}

var _ [64 - unsafe.Sizeof(slot{})]struct{} // slot must fit a cache line

func newKeyIndex() keyIndex { return keyIndex{seed: maphash.MakeSeed()} }

func (x *keyIndex) tag(key string) uint64 { return maphash.String(x.seed, key) | 1 }

func (s *slot) key() string {
	if s.klen > inlineKey {
		return s.ext.key
	}
	return string(s.kbuf[:s.klen])
}

func (s *slot) is(tag uint64, key string) bool {
	if s.tag != tag {
		return false
	}
	if s.klen > inlineKey {
		return s.ext.key == key
	}
	return int(s.klen) == len(key) && string(s.kbuf[:s.klen]) == key
}

// find returns the slot of key, or nil.
func (x *keyIndex) find(key string) *slot {
	if x.count == 0 {
		return nil
	}
	tag := x.tag(key)
	mask := uint64(len(x.slots) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.tag == 0 {
			return nil
		}
		if s.is(tag, key) {
			return s
		}
	}
}

// add appends e to key's entries.
func (x *keyIndex) add(key string, e matchEntry) {
	if (x.count+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	tag := x.tag(key)
	mask := uint64(len(x.slots) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		switch {
		case s.tag == 0:
			s.tag, s.first = tag, e
			if len(key) > inlineKey {
				s.klen, s.ext = inlineKey+1, &slotExt{key: key}
			} else {
				s.klen = uint8(copy(s.kbuf[:], key))
			}
			x.count++
			return
		case s.is(tag, key):
			if s.ext == nil {
				s.ext = &slotExt{}
			}
			s.ext.more = append(s.ext.more, e)
			return
		}
	}
}

// remove drops sub's entry under key and reports whether it was there.
func (x *keyIndex) remove(key string, sub *Subscription) bool {
	s := x.find(key)
	if s == nil {
		return false
	}
	var more []matchEntry
	if s.ext != nil {
		more = s.ext.more
	}
	switch {
	case s.first.sub == sub && len(more) == 0:
		x.clear(s)
		return true
	case s.first.sub == sub:
		last := len(more) - 1
		s.first, more[last] = more[last], matchEntry{}
		s.ext.more = more[:last]
		return true
	}
	for i, e := range more {
		if e.sub == sub {
			last := len(more) - 1
			more[i], more[last] = more[last], matchEntry{}
			s.ext.more = more[:last]
			return true
		}
	}
	return false
}

// clear empties a slot, shifting later slots of its probe run back so that
// no lookup stops early (no tombstones).
func (x *keyIndex) clear(s *slot) {
	mask := uint64(len(x.slots) - 1)
	hole := uint64((uintptr(unsafe.Pointer(s)) - uintptr(unsafe.Pointer(&x.slots[0]))) / unsafe.Sizeof(slot{}))
	for i := (hole + 1) & mask; x.slots[i].tag != 0; i = (i + 1) & mask {
		home := x.slots[i].tag & mask
		// Move slot i into the hole unless its home lies cyclically in (hole, i].
		if (i-home)&mask >= (i-hole)&mask {
			x.slots[hole] = x.slots[i]
			hole = i
		}
	}
	x.slots[hole] = slot{}
	x.count--
}

func (x *keyIndex) grow() {
	old := x.slots
	size := 8
	if len(old) > 0 {
		size = 2 * len(old)
	}
	x.slots = make([]slot, size)
	mask := uint64(size - 1)
	for i := range old {
		s := &old[i]
		if s.tag == 0 {
			continue
		}
		j := s.tag & mask
		for x.slots[j].tag != 0 {
			j = (j + 1) & mask
		}
		x.slots[j] = *s
	}
}
