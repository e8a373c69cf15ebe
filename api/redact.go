package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Redacted replaces secret material wherever resources are shown.
const Redacted = "[redacted]"

// secretKeys are the JSON fields (protojson and proto spellings) of Envoy
// resources whose every string is secret: a TLS private key, session
// ticket keys, a generic secret.
var secretKeys = map[string]bool{
	"private_key": true, "privateKey": true,
	"session_ticket_keys": true, "sessionTicketKeys": true,
	"generic_secret": true, "genericSecret": true,
	"password": true,
}

// RedactSecrets rewrites a JSON document (a config dump) so no private key
// shows: every string under a secret field (private_key, ...) becomes
// "[redacted]", and so does any other string holding a PEM private key,
// plain or base64 (inline_bytes). It keeps the fields' order and re-indents
// with two spaces. The xDS server redacts too; this is the API's own guard,
// so a missed spot upstream still leaks nothing.
func RedactSecrets(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var (
		out   bytes.Buffer
		stack []*frame
	)
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("redact: %w", err)
		}
		f := top()
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out.WriteByte(byte(d))
			stack = stack[:len(stack)-1]
			top().wrote()
			continue
		}
		f.sep(&out)
		if f != nil && f.object && f.wantKey {
			k, _ := tok.(string) // json.Decoder only yields string keys
			if isPrivateKey(k) {
				k = Redacted // absurd, but the promise is "nowhere"
			}
			writeString(&out, k)
			out.WriteByte(':')
			f.wantKey, f.valueSecret = false, f.secret || secretKeys[k]
			continue
		}
		secret := f != nil && (f.secret || f.valueSecret)
		switch v := tok.(type) {
		case json.Delim: // '{' or '['
			out.WriteByte(byte(v))
			stack = append(stack, &frame{object: v == '{', wantKey: v == '{', secret: secret})
			continue // the container counts in its parent once it closes
		case string:
			if secret || isPrivateKey(v) {
				v = Redacted
			}
			writeString(&out, v)
		case json.Number:
			out.WriteString(v.String())
		case bool:
			out.WriteString(strconv.FormatBool(v))
		case nil:
			out.WriteString("null")
		}
		f.wrote()
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("redact: indent: %w", err)
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), nil
}

// frame is one open object or array while RedactSecrets streams.
type frame struct {
	object      bool
	n           int  // members or elements written so far
	wantKey     bool // (object) the next token is a key
	secret      bool // every string below is secret
	valueSecret bool // (object) the value of the current key is secret
}

// sep writes the comma due before the next key (object) or element (array).
func (f *frame) sep(out *bytes.Buffer) {
	if f != nil && f.n > 0 && (!f.object || f.wantKey) {
		out.WriteByte(',')
	}
}

// wrote records a finished value in f: a member of an object, an element
// of an array.
func (f *frame) wrote() {
	if f == nil {
		return
	}
	f.n++
	if f.object {
		f.wantKey, f.valueSecret = true, false
	}
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always encodes
	b.Write(enc)
}

// isPrivateKey reports whether s is, or base64-encodes, a PEM private key.
func isPrivateKey(s string) bool {
	if strings.Contains(s, "PRIVATE KEY-----") {
		return true
	}
	// "-----BEGIN" in base64 starts with "LS0tLS1CRUdJTi".
	if !strings.Contains(s, "LS0tLS1CRUdJTi") {
		return false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return bytes.Contains(b, []byte("PRIVATE KEY-----"))
		}
	}
	return true // looks like an encoded PEM block we cannot read: err on the safe side
}
