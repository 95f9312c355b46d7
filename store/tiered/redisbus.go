package tiered

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultChannel is the Redis channel a [RedisBus] made with an empty name
// uses. Instances that share an L2 must share the channel; applications
// that share a Redis but not an L2 should use different channels (a shared
// one costs them extra invalidations, never stale reads).
const DefaultChannel = "gc:invalidations"

// Heartbeat of a RedisBus subscription: after pingEvery without a message,
// it sends PING; if nothing comes back within pingTimeout, the connection
// is deemed lost. A connection that dies without a word (a dropped route, a
// failover that leaves no RST) is thus noticed within pingEvery+pingTimeout,
// which bounds how long an instance can serve from L1 what such a loss hid
// from it. A connection that is closed is noticed at once.
const (
	pingEvery        = 500 * time.Millisecond
	pingTimeout      = 500 * time.Millisecond
	subscribeTimeout = 2 * time.Second
	maxBackoff       = time.Second
)

// RedisBus is a [Bus] on Redis pub/sub (PUBLISH and SUBSCRIBE on one
// channel). On Redis Cluster, PUBLISH reaches subscribers on every node.
//
// Each subscription owns one connection and reads it from one goroutine. It
// reports down (onState(false)) when the connection fails, when go-redis
// resubscribes on a new connection behind its back, when a message cannot
// be read, or when the heartbeat goes unanswered; it then closes the
// connection and subscribes again, with a backoff up to one second while
// Redis cannot be reached, and reports up once Redis confirms the new
// subscription.
type RedisBus struct {
	rdb     redis.UniversalClient
	channel string

	// Heartbeat and connection timing; tests shorten them.
	pingEvery, pingTimeout, subscribeTimeout time.Duration
}

var _ Bus = (*RedisBus)(nil)

// NewRedisBus returns a bus on channel ("" means [DefaultChannel]) through
// rdb, a client, ring or cluster client. The bus does not close rdb.
func NewRedisBus(rdb redis.UniversalClient, channel string) *RedisBus {
	if channel == "" {
		channel = DefaultChannel
	}
	return &RedisBus{
		rdb:              rdb,
		channel:          channel,
		pingEvery:        pingEvery,
		pingTimeout:      pingTimeout,
		subscribeTimeout: subscribeTimeout,
	}
}

// Publish implements [Bus].
func (b *RedisBus) Publish(ctx context.Context, tags []string) error {
	if err := b.rdb.Publish(ctx, b.channel, appendPayload(nil, tags)).Err(); err != nil {
		return fmt.Errorf("tiered: publish on %s: %w", b.channel, err)
	}
	return nil
}

// Subscribe implements [Bus]. It returns at once; the subscription comes
// up in the background.
func (b *RedisBus) Subscribe(ctx context.Context, onTags func([]string), onState func(bool)) (func(), error) {
	if onTags == nil || onState == nil {
		return nil, fmt.Errorf("tiered: Subscribe needs both callbacks")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &redisSub{bus: b, onTags: onTags, onState: onState, done: make(chan struct{})}
	go s.run(ctx)
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			s.mu.Lock()
			if s.ps != nil {
				_ = s.ps.Close() // unblocks the read
			}
			s.mu.Unlock()
			<-s.done
		})
	}, nil
}

type redisSub struct {
	bus     *RedisBus
	onTags  func([]string)
	onState func(bool)
	done    chan struct{}

	mu sync.Mutex
	ps *redis.PubSub // the current connection, for stop to close
}

func (s *redisSub) run(ctx context.Context) {
	defer close(s.done)
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if s.session(ctx) {
			backoff = 0 // it was up: try again at once
		} else {
			backoff = min(max(2*backoff, 10*time.Millisecond), maxBackoff)
		}
	}
}

// session subscribes on a fresh connection and reads it until it fails. It
// reports whether the subscription came up; if it did, it reports down
// before returning.
func (s *redisSub) session(ctx context.Context) (wasUp bool) {
	ps := s.bus.rdb.Subscribe(ctx, s.bus.channel)
	s.mu.Lock()
	if ctx.Err() != nil {
		s.mu.Unlock()
		_ = ps.Close()
		return false
	}
	s.ps = ps
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.ps = nil
		s.mu.Unlock()
		_ = ps.Close()
	}()

	// Redis answers SUBSCRIBE before it delivers any message on the
	// connection: from the confirmation on, nothing published is missed.
	msg, err := ps.ReceiveTimeout(ctx, s.bus.subscribeTimeout)
	if err != nil {
		return false
	}
	if sub, ok := msg.(*redis.Subscription); !ok || sub.Kind != "subscribe" {
		return false
	}
	s.onState(true)
	defer s.onState(false)

	var pingDeadline time.Time // zero: no PING outstanding
	for {
		wait := s.bus.pingEvery
		if !pingDeadline.IsZero() {
			wait = time.Until(pingDeadline)
			if wait <= 0 {
				return true // the heartbeat went unanswered
			}
		}
		msg, err := ps.ReceiveTimeout(ctx, wait)
		if err != nil {
			if ctx.Err() != nil || !isTimeout(err) {
				return true
			}
			if pingDeadline.IsZero() {
				if ps.Ping(ctx) != nil {
					return true
				}
				pingDeadline = time.Now().Add(s.bus.pingTimeout)
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			tags, err := parsePayload(m.Payload)
			if err != nil {
				// Something was sent that we cannot read: it may have
				// been an invalidation.
				s.onState(false)
				s.onState(true)
				continue
			}
			s.onTags(tags)
		case *redis.Pong:
			pingDeadline = time.Time{}
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				return true
			}
			// go-redis reconnected and subscribed again by itself: what
			// was published in between is lost, what follows is not.
			s.onState(false)
			s.onState(true)
		default:
			return true
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}
