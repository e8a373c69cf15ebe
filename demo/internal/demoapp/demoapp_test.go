package demoapp

import (
	"testing"
	"time"
)

func TestShutdownDelay(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want time.Duration
		err  bool
	}{
		{env: map[string]string{}, want: 0},
		{env: map[string]string{"LISTEN_HOST": "0.0.0.0"}, want: 2 * time.Second},
		{env: map[string]string{"LISTEN_HOST": "0.0.0.0", "SHUTDOWN_DELAY": "0s"}, want: 0},
		{env: map[string]string{"SHUTDOWN_DELAY": "500ms"}, want: 500 * time.Millisecond},
		{env: map[string]string{"SHUTDOWN_DELAY": "soon"}, err: true},
		{env: map[string]string{"SHUTDOWN_DELAY": "-1s"}, err: true},
		{env: map[string]string{"SHUTDOWN_DELAY": "2m"}, err: true},
	} {
		got, err := shutdownDelay(func(k string) string { return c.env[k] })
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%v: got %v, %v; want %v (error %v)", c.env, got, err, c.want, c.err)
		}
	}
}
