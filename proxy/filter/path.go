package filter

import (
	"net/http"
	"strings"
)

// RequestPath returns r's path without the query, normalized as Envoy's HCM
// does with normalize_path and merge_slashes (see NormalizePath). Access
// control matches this form, so /a/../admin, //admin and /%61dmin cannot
// slip past a rule written for /admin. It allocates only for paths that
// need normalizing.
func RequestPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if p == "" {
		return "/"
	}
	return NormalizePath(p)
}

// NormalizePath normalizes an escaped URL path per RFC 3986 section 6.2.2:
// percent-encoded unreserved characters are decoded, other escapes
// upper-cased and a stray "%" encoded, dot segments are removed (5.2.4); and runs of slashes are
// merged into one. An encoded slash (%2F) stays encoded.
func NormalizePath(p string) string {
	if !needsNormalizing(p) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			if unreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(upper(p[i+1]))
				b.WriteByte(upper(p[i+2]))
			}
			i += 2
			continue
		}
		if c == '%' {
			b.WriteString("%25") // a stray percent sign must not start an escape later
			continue
		}
		b.WriteByte(c)
	}
	return removeDots(b.String())
}

// needsNormalizing reports whether p holds an escape, a dot segment or a
// doubled slash.
func needsNormalizing(p string) bool {
	if strings.IndexByte(p, '%') >= 0 || strings.Contains(p, "//") {
		return true
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '.' || (i > 0 && p[i-1] != '/') {
			continue
		}
		// a segment starting with a dot: "." or ".."?
		j := i + 1
		if j < len(p) && p[j] == '.' {
			j++
		}
		if j == len(p) || p[j] == '/' {
			return true
		}
	}
	return false
}

// removeDots resolves "." and ".." segments and merges empty segments of a
// decoded path. A relative path is treated as if it started with "/".
func removeDots(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	res := "/" + strings.Join(out, "/")
	// A trailing slash or a final dot segment leaves a directory path.
	if len(out) > 0 && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
		res += "/"
	}
	return res
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
