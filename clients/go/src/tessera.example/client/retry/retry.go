// Package retry holds the one retry rule that is safe for every Tessera rpc: a refusal.
//
// The server refuses a call under overload with RESOURCE_EXHAUSTED, a google.rpc.ErrorInfo reason
// SERVER_OVERLOADED (load shedding) or RATE_LIMITED (a per-principal limit) and a RetryInfo delay,
// before any handler runs. Nothing was done, so even an update with an etag, a delete or a publish
// may be sent again. RetryRefused is a unary client interceptor that does so, no sooner than the
// advice (plus jitter above it, so refused callers do not all come back together), up to
// MaxAttempts attempts and never past the call's deadline. Every other error is returned as it is:
// retrying those depends on the rpc (see tessera_client/retry.py).
package retry

import (
	"context"
	"math/rand"
	"strings"
	"time"

	oldproto "github.com/golang/protobuf/proto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RefusalReasons are the ErrorInfo reasons of a refusal (server/api/shedding.py, rate_limit.py).
var RefusalReasons = map[string]bool{"SERVER_OVERLOADED": true, "RATE_LIMITED": true}

// Refusal reports whether err is a refusal, with its reason and RetryInfo advice (0 without one).
func Refusal(err error) (reason string, advice time.Duration, ok bool) {
	st, isStatus := status.FromError(err)
	if err == nil || !isStatus || st.Code() != codes.ResourceExhausted {
		return "", 0, false
	}
	for _, detail := range st.Proto().GetDetails() {
		// Debian's genproto is github.com/golang/protobuf's API: decode by type URL.
		url := detail.GetTypeUrl()
		if strings.HasSuffix(url, "/google.rpc.ErrorInfo") {
			info := &errdetails.ErrorInfo{}
			if oldproto.Unmarshal(detail.GetValue(), info) == nil {
				reason = info.Reason
			}
		} else if strings.HasSuffix(url, "/google.rpc.RetryInfo") {
			info := &errdetails.RetryInfo{}
			if oldproto.Unmarshal(detail.GetValue(), info) == nil && info.RetryDelay != nil {
				advice = time.Duration(info.RetryDelay.Seconds)*time.Second + time.Duration(info.RetryDelay.Nanos)
			}
		}
	}
	return reason, advice, RefusalReasons[reason]
}

// Policy says how often and how long to wait; the zero value of a field takes its default.
type Policy struct {
	MaxAttempts    int           // counts the first try (default 5)
	InitialBackoff time.Duration // the jitter's cap before the first retry (default 100 ms)
	MaxBackoff     time.Duration // the jitter's cap grows twofold up to this (default 5 s)
	Random         func() float64
	// Sleep waits d or until ctx ends (tests replace it).
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry hears each retry (logs, metrics).
	OnRetry func(method, reason string, delay time.Duration)
}

// Delay is the wait before retry number n (1 for the first) after a refusal advising `advice`:
// the advice plus a jitter uniform in [0, cap(n)].
func (p Policy) Delay(n int, advice time.Duration) time.Duration {
	p = p.withDefaults()
	cap := p.InitialBackoff << uint(n-1)
	if cap > p.MaxBackoff || cap <= 0 {
		cap = p.MaxBackoff
	}
	return advice + time.Duration(p.Random()*float64(cap))
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	if p.Random == nil {
		p.Random = rand.Float64
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RetryRefused is the interceptor with the default policy and maxAttempts attempts at most.
func RetryRefused(maxAttempts int) grpc.UnaryClientInterceptor {
	return Policy{MaxAttempts: maxAttempts}.Interceptor()
}

// Interceptor sends a refused unary call again after the refusal's advice plus jitter.
func (p Policy) Interceptor() grpc.UnaryClientInterceptor {
	p = p.withDefaults()
	return func(ctx context.Context, method string, req, reply interface{},
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		for attempt := 1; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			reason, advice, refused := Refusal(err)
			if !refused || attempt >= p.MaxAttempts {
				return err
			}
			delay := p.Delay(attempt, advice)
			if deadline, ok := ctx.Deadline(); ok && time.Now().Add(delay).After(deadline) {
				return err // the wait would outlast the call: the refusal is the answer
			}
			if p.OnRetry != nil {
				p.OnRetry(method, reason, delay)
			}
			if p.Sleep(ctx, delay) != nil {
				return err
			}
		}
	}
}
