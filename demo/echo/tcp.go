package echo

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// ServeTCP runs the TCP echo app on $LISTEN_HOST:$PORT (demoapp.Listen)
// until ctx is done: each line a client sends comes back prefixed with the
// app's version and instance, "v1 INSTANCE: LINE".
func ServeTCP(ctx context.Context) error {
	ln, err := demoapp.Listen("echo tcp")
	if err != nil {
		return err
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
