package listener

import (
	"errors"
	"net"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// closedErr reports whether err ends a read from a connection the peer
// closed: EOF (nil from ReadAll), or a reset when it closed with our bytes
// unread.
func closedErr(err error) bool { return err == nil || errors.Is(err, syscall.ECONNRESET) }

func errorsIsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
