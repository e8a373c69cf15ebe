package echo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// ServeTCP runs the TCP echo app on 127.0.0.1:$PORT until ctx is done: each
// line a client sends comes back prefixed with the app's version and
// instance, "v1 INSTANCE: LINE".
func ServeTCP(ctx context.Context) error {
	port := os.Getenv("PORT")
	if port == "" {
		return errors.New("echo tcp: $PORT is not set (run me with `weft run --protocol tcp`)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return fmt.Errorf("echo tcp: %w", err)
	}
	return serveTCP(ctx, ln, os.Getenv("VERSION"), os.Getenv("HOSTNAME"))
}

func serveTCP(ctx context.Context, ln net.Listener, version, instance string) error {
	var wg sync.WaitGroup
	go func() { <-ctx.Done(); ln.Close() }()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if _, err := fmt.Fprintf(c, "%s %s: %s\n", version, instance, sc.Text()); err != nil {
					return
				}
			}
		}()
	}
}
