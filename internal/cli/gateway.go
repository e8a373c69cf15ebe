package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/weft-mesh/weft/proxy"
)

// Backoff between restarts of weft up's ingress gateway: doubling from
// gatewayRestartMin up to gatewayRestartMax, back to the minimum once a
// gateway has run gatewayHealthyAfter.
const (
	gatewayRestartMin   = time.Second
	gatewayRestartMax   = 30 * time.Second
	gatewayHealthyAfter = time.Minute
)

// gatewaySupervisor keeps weft up's ingress gateway running: when it
// stops while the mesh is up (someone called its /quitquitquit, or it
// failed), the supervisor says so and starts it again, with backoff.
type gatewaySupervisor struct {
	done chan struct{}
}

// superviseGateway watches first, the gateway already started, and starts
// a new one with start whenever the current one stops before ctx ends.
func superviseGateway(ctx context.Context, log *slog.Logger, first *proxy.Handle, start func(context.Context) (*proxy.Handle, error)) *gatewaySupervisor {
	s := &gatewaySupervisor{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		h, since, delay := first, time.Now(), gatewayRestartMin
		for {
			err := h.Wait()
			if ctx.Err() != nil {
				return // the mesh is shutting down: the gateway was told to stop
			}
			if time.Since(since) >= gatewayHealthyAfter {
				delay = gatewayRestartMin
			}
			log.Warn("ingress gateway exited while the mesh is up; restarting it", "err", err, "in", delay)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				delay = min(2*delay, gatewayRestartMax)
				if h, err = start(ctx); err == nil {
					break
				}
				log.Error("ingress gateway restart failed", "err", err, "retry_in", delay)
			}
			since = time.Now()
			log.Info("ingress gateway restarted", "admin", h.Admin())
		}
	}()
	return s
}

// Wait blocks until the supervisor has stopped: its context ended and the
// last gateway drained.
func (s *gatewaySupervisor) Wait() { <-s.done }
