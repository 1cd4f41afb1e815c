package retry

import (
	"context"
	"testing"
	"time"

	oldproto "github.com/golang/protobuf/proto"
	"github.com/golang/protobuf/ptypes/any"
	"github.com/golang/protobuf/ptypes/duration"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// failure is a status as the server sends it: ErrorInfo with `reason`, RetryInfo with `advice`.
func failure(code codes.Code, reason string, advice time.Duration) error {
	pack := func(name string, m oldproto.Message) *any.Any {
		value, err := oldproto.Marshal(m)
		if err != nil {
			panic(err)
		}
		return &any.Any{TypeUrl: "type.googleapis.com/google.rpc." + name, Value: value}
	}
	details := []*any.Any{pack("ErrorInfo", &errdetails.ErrorInfo{Reason: reason, Domain: "tessera.dashboard.v1"})}
	if advice > 0 {
		delay := &duration.Duration{Seconds: int64(advice / time.Second), Nanos: int32(advice % time.Second)}
		details = append(details, pack("RetryInfo", &errdetails.RetryInfo{RetryDelay: delay}))
	}
	return status.ErrorProto(&spb.Status{Code: int32(code), Message: "scripted", Details: details})
}

// scripted answers the given errors in turn, then nil; it counts the attempts.
func scripted(errs ...error) (grpc.UnaryInvoker, *int) {
	calls := 0
	return func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		calls++
		if calls <= len(errs) {
			return errs[calls-1]
		}
		return nil
	}, &calls
}

// recording is a policy with jitter at its top whose sleeps are recorded, not slept.
func recording(maxAttempts int) (Policy, *[]time.Duration) {
	slept := &[]time.Duration{}
	return Policy{
		MaxAttempts: maxAttempts,
		Random:      func() float64 { return 1 },
		Sleep: func(ctx context.Context, d time.Duration) error {
			*slept = append(*slept, d)
			return nil
		},
	}, slept
}

const update = "/dashboard.v1.DashboardService/UpdateDashboard"

func TestAnUpdateRefusedByTheRateLimitIsSentAgainAfterTheAdvice(t *testing.T) {
	policy, slept := recording(5)
	invoke, calls := scripted(
		failure(codes.ResourceExhausted, "RATE_LIMITED", 500*time.Millisecond),
		failure(codes.ResourceExhausted, "SERVER_OVERLOADED", 50*time.Millisecond),
	)
	err := policy.Interceptor()(context.Background(), update, nil, nil, nil, invoke)
	if err != nil || *calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, *calls)
	}
	want := []time.Duration{600 * time.Millisecond, 250 * time.Millisecond} // advice + cap(n)
	if len(*slept) != 2 || (*slept)[0] != want[0] || (*slept)[1] != want[1] {
		t.Fatalf("slept %v, want %v", *slept, want)
	}
}

func TestTheWaitIsNeverShorterThanTheAdvice(t *testing.T) {
	p := Policy{}
	for i := 0; i < 200; i++ {
		if d := p.Delay(1, 300*time.Millisecond); d < 300*time.Millisecond || d > 400*time.Millisecond {
			t.Fatalf("delay %v outside [advice, advice + 100 ms]", d)
		}
	}
}

func TestOtherErrorsAreReturnedAtOnce(t *testing.T) {
	for _, err := range []error{
		failure(codes.ResourceExhausted, "DATA_SOURCE_BUSY", time.Second),
		failure(codes.Unavailable, "SERVER_OVERLOADED", time.Second),
		failure(codes.Aborted, "ETAG_MISMATCH", 0),
	} {
		policy, slept := recording(5)
		invoke, calls := scripted(err)
		if got := policy.Interceptor()(context.Background(), update, nil, nil, nil, invoke); got != err || *calls != 1 || len(*slept) != 0 {
			t.Fatalf("%v: got %v after %d calls, %d sleeps", err, got, *calls, len(*slept))
		}
	}
}

func TestAttemptsAndTheDeadlineBoundTheRetries(t *testing.T) {
	refused := failure(codes.ResourceExhausted, "SERVER_OVERLOADED", 10*time.Millisecond)
	policy, slept := recording(3)
	invoke, calls := scripted(refused, refused, refused, refused)
	if err := policy.Interceptor()(context.Background(), update, nil, nil, nil, invoke); err != refused || *calls != 3 {
		t.Fatalf("got %v after %d calls, want the refusal after 3", err, *calls)
	}
	if len(*slept) != 2 {
		t.Fatalf("slept %v, want 2 waits", *slept)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	policy, slept = recording(5)
	invoke, calls = scripted(failure(codes.ResourceExhausted, "RATE_LIMITED", 2*time.Second))
	if err := policy.Interceptor()(ctx, update, nil, nil, nil, invoke); err == nil || *calls != 1 || len(*slept) != 0 {
		t.Fatalf("an advice past the deadline: got %v after %d calls", err, *calls)
	}
}

func TestRefusalReadsReasonAndAdvice(t *testing.T) {
	reason, advice, ok := Refusal(failure(codes.ResourceExhausted, "RATE_LIMITED", 1500*time.Millisecond))
	if !ok || reason != "RATE_LIMITED" || advice != 1500*time.Millisecond {
		t.Fatalf("got %q %v %v", reason, advice, ok)
	}
	if _, _, ok := Refusal(nil); ok {
		t.Fatal("nil is no refusal")
	}
}
