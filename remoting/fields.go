package remoting

import "iter"

// Fields are a command's ext fields as key, value pairs in one slice, in wire order:
//
//	remoting.Fields{"topic", "TopicTest", "queueId", "3"}
//
// A header has a handful of fields (a send request 13, its answer 5), so a lookup scans: that costs less
// than hashing, and decoding fills one slice instead of building a map. Decoded fields hold each key
// once: a key given twice on the wire keeps its first place and its last value, as a map filled in
// wire order would. An odd length is a programming error that encoding reports.
type Fields []string

// Get returns the value of key and whether it is present.
func (f Fields) Get(key string) (string, bool) {
	if i := f.index(key, 0); i >= 0 {
		return f[i+1], true
	}
	return "", false
}

// index returns the position of key, searching from pair position from (even) to the end and then
// from the start, or -1.
func (f Fields) index(key string, from int) int {
	n := len(f) - len(f)%2
	from = min(from, n)
	for i := from; i < n; i += 2 {
		if sameKey(f[i], key) {
			return i
		}
	}
	for i := 0; i < from; i += 2 {
		if sameKey(f[i], key) {
			return i
		}
	}
	return -1
}

// sameKey is k == key with the first byte compared inline: most keys that differ differ there, and
// the call to the runtime's memory comparison showed in profiles.
func sameKey(k, key string) bool {
	return len(k) == len(key) && (len(k) == 0 || k[0] == key[0]) && k == key
}

// Value returns the value of key, or "" when absent.
func (f Fields) Value(key string) string {
	v, _ := f.Get(key)
	return v
}

// Has reports whether key is present.
func (f Fields) Has(key string) bool {
	_, ok := f.Get(key)
	return ok
}

// Set sets key to value, replacing its value when present.
func (f *Fields) Set(key, value string) {
	if i := f.index(key, 0); i >= 0 {
		(*f)[i+1] = value
		return
	}
	*f = append((*f)[:len(*f)-len(*f)%2], key, value)
}

// Delete removes every pair with key.
func (f *Fields) Delete(key string) {
	s := *f
	out := s[:0]
	for i := 0; i+1 < len(s); i += 2 {
		if s[i] != key {
			out = append(out, s[i], s[i+1])
		}
	}
	clear(s[len(out):])
	*f = out
}

// Len returns the number of pairs.
func (f Fields) Len() int { return len(f) / 2 }

// All yields the pairs in order.
func (f Fields) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for i := 0; i+1 < len(f); i += 2 {
			if !yield(f[i], f[i+1]) {
				return
			}
		}
	}
}

// keySet remembers the keys a decoder has added, so that a key given twice replaces its value (the
// frame is hostile or odd; no client repeats a key) without comparing every pair with every other:
// only keys that share a bit are compared.
type keySet [4]uint64

// add appends key and value to f, or replaces the value of an earlier pair with key.
func (s *keySet) add(f Fields, key, value string) Fields {
	x := uint32(len(key)) << 16
	if len(key) > 0 {
		x |= uint32(key[0])<<8 | uint32(key[len(key)-1])
	}
	h := (x * 0x9E3779B1) >> 24 // Fibonacci hashing: the top byte of the product mixes every input bit
	if s[h/64]&(1<<(h%64)) != 0 {
		if i := f.index(key, 0); i >= 0 {
			f[i+1] = value
			return f
		}
	}
	s[h/64] |= 1 << (h % 64)
	return append(f, key, value)
}
