package lb

// HashString returns a well-mixed 64-bit hash of s: FNV-1a followed by a
// MurmurHash3-style finalizer. The consistent-hashing balancers place hosts
// with it; route hash policies may use it for their keys too.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return Mix64(h)
}

// Mix64 is a 64-bit finalizer: every input bit affects every output bit.
func Mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb3f97f1a85ec
	h ^= h >> 33
	return h
}
