package loadgen

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseHey reads a `hey` command line, as Flagger's load tester takes it
// in a webhook's metadata.cmd ("hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"),
// into Options. hey's -q is a rate per worker, so the run's QPS is q x c.
// Supported: -z, -n, -q, -c, -m, -H (repeatable), -t, -d, -T, -A, -host.
// A rate (-q) is required: an unpaced load is not bounded.
func ParseHey(cmd string) (Options, error) {
	args, err := splitCommand(cmd)
	if err != nil {
		return Options{}, err
	}
	if len(args) == 0 || args[0] != "hey" {
		return Options{}, fmt.Errorf("want a hey command (hey -z 1m -q 10 -c 2 URL), got %q", cmd)
	}
	o := Options{Method: http.MethodGet, Header: http.Header{}, Concurrency: 50, Timeout: 20 * time.Second}
	var (
		n       = 200
		q       float64
		z       time.Duration
		rest    = args[1:]
		pending string
	)
	next := func() (string, error) {
		if len(rest) == 0 {
			return "", fmt.Errorf("flag %s needs a value", pending)
		}
		v := rest[0]
		rest = rest[1:]
		return v, nil
	}
	for len(rest) > 0 {
		a := rest[0]
		rest = rest[1:]
		if !strings.HasPrefix(a, "-") {
			if o.URL != "" {
				return Options{}, fmt.Errorf("more than one URL: %q and %q", o.URL, a)
			}
			o.URL = a
			continue
		}
		flag, val, inline := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		pending = "-" + flag
		if !inline {
			if val, err = next(); err != nil {
				return Options{}, err
			}
		}
		switch flag {
		case "z":
			if z, err = time.ParseDuration(val); err != nil || z <= 0 {
				return Options{}, fmt.Errorf("-z %q: want a duration such as 30s or 1m", val)
			}
		case "n":
			if n, err = strconv.Atoi(val); err != nil || n < 1 {
				return Options{}, fmt.Errorf("-n %q: want a positive number of requests", val)
			}
		case "q":
			if q, err = strconv.ParseFloat(val, 64); err != nil || q <= 0 || math.IsInf(q, 0) {
				return Options{}, fmt.Errorf("-q %q: want a positive rate per worker", val)
			}
		case "c":
			if o.Concurrency, err = strconv.Atoi(val); err != nil || o.Concurrency < 1 {
				return Options{}, fmt.Errorf("-c %q: want a positive number of workers", val)
			}
		case "m":
			o.Method = strings.ToUpper(val)
		case "H":
			k, v, ok := strings.Cut(val, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return Options{}, fmt.Errorf("-H %q: want 'Name: value'", val)
			}
			if strings.EqualFold(strings.TrimSpace(k), "host") {
				o.Host = strings.TrimSpace(v)
			} else {
				o.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		case "t":
			secs, err := strconv.Atoi(val)
			if err != nil || secs < 0 {
				return Options{}, fmt.Errorf("-t %q: want a timeout in seconds", val)
			}
			if secs > 0 {
				o.Timeout = time.Duration(secs) * time.Second
			}
		case "d":
			o.Body = []byte(val)
		case "T":
			o.Header.Set("Content-Type", val)
		case "A":
			o.Header.Set("Accept", val)
		case "host":
			o.Host = val
		default:
			return Options{}, fmt.Errorf("hey flag -%s is not supported by weft's load tester (it takes -z -n -q -c -m -H -t -d -T -A -host)", flag)
		}
	}
	if o.URL == "" {
		return Options{}, errors.New("no URL in the hey command")
	}
	if q == 0 {
		return Options{}, errors.New("give -q (requests per second per worker): weft's load tester sends only paced, bounded load")
	}
	o.QPS = q * float64(o.Concurrency)
	switch {
	case z > 0:
		o.Duration = z // hey ignores -n when -z is given
	default:
		o.Requests = n
		o.Duration = time.Duration(math.Ceil(float64(n)/o.QPS))*time.Second + time.Second
	}
	return o, o.Check()
}

// splitCommand splits a command line as a POSIX shell would for words:
// spaces separate, single quotes keep everything, double quotes keep all
// but backslash escapes, a backslash outside quotes escapes the next byte.
func splitCommand(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
