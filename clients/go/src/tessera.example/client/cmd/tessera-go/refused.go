package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"tessera.example/client/retry"
	v1 "tessera.example/gen/dashboard/v1"
)

// refusedUpdate (-check-refused-update, against a server with a per-principal rate limit): spends
// the caller's budget through a connection without retries until the server refuses with
// RATE_LIMITED, then updates a dashboard's title with its etag through the retrying connection.
// The update must be refused, retried after the advice, and land exactly once: version + 1.
func refusedUpdate(ctx context.Context, s services, plain *grpc.ClientConn, retried *[]string) {
	step("An etag update refused by the rate limit is retried after the advice and lands once")
	board, err := s.dashboards.CreateDashboard(ctx, &v1.CreateDashboardRequest{
		Dashboard: &v1.Dashboard{Title: "Refused from Go"},
	})
	must(err, "CreateDashboard")
	direct := v1.NewDashboardServiceClient(plain)
	var advice time.Duration
	for i := 0; i < 50 && advice == 0; i++ {
		_, err := direct.GetDashboard(ctx, &v1.GetDashboardRequest{Id: board.Id})
		if reason, wait, refused := retry.Refusal(err); refused {
			expect(reason == "RATE_LIMITED", "the refusal is RATE_LIMITED, not %s", reason)
			advice = wait
		} else {
			must(err, "GetDashboard")
		}
	}
	expect(advice > 0, "the budget ran out with a RetryInfo advice")
	say("budget spent: refused with RATE_LIMITED, advice %v", advice)
	started := time.Now()
	updated, err := s.dashboards.UpdateDashboard(ctx, &v1.UpdateDashboardRequest{
		Dashboard:  &v1.Dashboard{Id: board.Id, Title: "Renamed once from Go", Etag: board.Etag},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title"}},
	})
	must(err, "UpdateDashboard")
	took := time.Since(started)
	expect(len(*retried) > 0, "the update was refused and retried")
	say("retried: %v; answered after %v", *retried, took.Round(time.Millisecond))
	expect(updated.Version == board.Version+1, "version %d -> %d, want one more", board.Version, updated.Version)
	time.Sleep(2 * time.Second) // budget back
	again, err := s.dashboards.GetDashboard(ctx, &v1.GetDashboardRequest{Id: board.Id})
	must(err, "GetDashboard")
	expect(again.Version == board.Version+1 && again.Title == "Renamed once from Go", "applied exactly once")
	fmt.Printf("   version %d -> %d, applied once\n", board.Version, again.Version)
	_, err = s.dashboards.DeleteDashboard(ctx, &v1.DeleteDashboardRequest{Id: board.Id, Etag: again.Etag})
	must(err, "DeleteDashboard")
}
