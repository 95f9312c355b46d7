package core

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Log logs fail-open events at most once a second per Log, so that a store
// outage, which fails every call, does not flood the log; the counters
// keep the numbers. Errors the application must act on (a write refused, a
// close that left invalidations undone) go through Always.
type Log struct {
	l    *slog.Logger
	last atomic.Int64
}

// NewLog returns a Log on l (nil: slog.Default()).
func NewLog(l *slog.Logger) *Log {
	if l == nil {
		l = slog.Default()
	}
	return &Log{l: l}
}

// Limited logs at most once a second.
func (l *Log) Limited(level slog.Level, msg string, args ...any) {
	now, last := time.Now().UnixNano(), l.last.Load()
	if now-last < int64(time.Second) || !l.last.CompareAndSwap(last, now) {
		return
	}
	l.l.Log(context.Background(), level, msg, args...)
}

// Always logs.
func (l *Log) Always(level slog.Level, msg string, args ...any) {
	l.l.Log(context.Background(), level, msg, args...)
}

// Logger returns the underlying logger.
func (l *Log) Logger() *slog.Logger { return l.l }
