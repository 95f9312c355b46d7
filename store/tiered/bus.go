package tiered

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Bus carries invalidations between the instances that share an L2: each
// instance publishes the tags it bumped, and hears the tags every instance
// bumped (its own included).
//
// Delivery may be late and may fail. Whenever a message may have been lost
// as far as the subscription can tell, the subscriber is told so through
// onState(false), and it learns that delivery is reliable again through
// onState(true). Losses the subscription cannot see (a message dropped
// between servers while the subscriber's own connection is healthy) are the
// [Store]'s to notice: it publishes heartbeats, messages with no tags, and
// stops trusting its L1 when it hears nothing for Config.HeartbeatTimeout.
// A Bus delivers a message with no tags like any other.
type Bus interface {
	// Publish sends tags (maybe none) to every subscriber. It returns once
	// the bus has accepted the message (for Redis: PUBLISH has returned);
	// an error means other instances may never hear of it.
	Publish(ctx context.Context, tags []string) error

	// Subscribe delivers messages until stop is called or ctx ends:
	//
	//   - onTags(tags): tags were bumped through some instance, or, with no
	//     tags, an instance published a heartbeat;
	//   - onState(true): the subscription is established, and every message
	//     published from now on will be delivered, until the next
	//     onState(false). Messages published before may have been lost.
	//   - onState(false): messages may be lost from now on (the connection
	//     broke, went silent, or delivered something unreadable).
	//
	// A subscription starts down: nothing is promised before the first
	// onState(true). Calls for one subscription are never concurrent and
	// come in order; none is made after stop returns. An error means the
	// subscription could not be started at all; a server that cannot be
	// reached is not an error (the subscription stays down and retries).
	Subscribe(ctx context.Context, onTags func(tags []string), onState func(up bool)) (stop func(), err error)
}

// payloadFormat is the first byte of every message, so that a later format
// can be told apart (a receiver that cannot read a message resets).
const payloadFormat = 1

// appendPayload encodes tags as the format byte followed by, for each tag,
// its length as a uvarint and its bytes. Tags may hold any byte.
func appendPayload(b []byte, tags []string) []byte {
	b = append(b, payloadFormat)
	for _, t := range tags {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return b
}

var errPayload = errors.New("tiered: unreadable bus message")

func parsePayload(p string) ([]string, error) {
	if len(p) == 0 || p[0] != payloadFormat {
		return nil, errPayload
	}
	p = p[1:]
	var tags []string
	for len(p) > 0 {
		n, k := binary.Uvarint([]byte(p[:min(len(p), binary.MaxVarintLen64)]))
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errPayload
		}
		tags = append(tags, p[k:k+int(n)])
		p = p[k+int(n):]
	}
	return tags, nil
}

// LocalBus is an in-process [Bus], for tests and for several stores in one
// process. Publish returns after every subscriber has handled the message,
// so there is no propagation window. The zero value is not ready; use
// [NewLocalBus].
type LocalBus struct {
	mu   sync.RWMutex
	subs map[*localSub]struct{}
}

type localSub struct {
	mu      sync.Mutex // serialises the subscriber's callbacks
	onTags  func([]string)
	onState func(bool)
	stopped bool
}

var _ Bus = (*LocalBus)(nil)

// NewLocalBus returns a bus with no subscribers.
func NewLocalBus() *LocalBus { return &LocalBus{subs: map[*localSub]struct{}{}} }

// Publish implements [Bus]. Subscribers get their own copy of tags.
func (b *LocalBus) Publish(_ context.Context, tags []string) error {
	b.mu.RLock()
	subs := make([]*localSub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.RUnlock()
	for _, s := range subs {
		s.mu.Lock()
		if !s.stopped {
			s.onTags(slices.Clone(tags))
		}
		s.mu.Unlock()
	}
	return nil
}

// Subscribe implements [Bus]. The subscription is up before it returns.
func (b *LocalBus) Subscribe(ctx context.Context, onTags func([]string), onState func(bool)) (func(), error) {
	if onTags == nil || onState == nil {
		return nil, fmt.Errorf("tiered: Subscribe needs both callbacks")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &localSub{onTags: onTags, onState: onState}
	s.mu.Lock()
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	s.onState(true)
	s.mu.Unlock()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			s.mu.Lock()
			s.stopped = true
			s.mu.Unlock()
		})
	}
	context.AfterFunc(ctx, stop)
	return stop, nil
}
