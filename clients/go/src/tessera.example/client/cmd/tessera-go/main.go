// tessera-go: a small Go program on the stubs generated from proto/ with Debian's protoc-gen-go
// and protoc-gen-go-grpc. It makes a dashboard with one widget, lists dashboards by tag, reads the
// widget's data (a cache miss, then a hit), shows an invalid request's field violations, exports
// the dashboard as a PNG following the export's watch to its end (resuming with since_revision if
// the stream drops), downloads the file checking its sha256, subscribes a webhook of its own (an
// HTTP server on loopback) to the dashboard, sends the report now and follows the delivery's watch
// until the webhook arrived with a valid signature, previews and silences an alert rule, and
// cleans up. It checks every step and exits 1 with the reason when one does not do what it says;
// the last line is OK.
//
//	tessera-go -address 127.0.0.1:50051 -token "$TESSERA_TOKEN"
//	tessera-go -address 10.0.0.1:50051,10.0.0.2:50051 ...   (round robin over several servers)
//
// Every call sends back the highest write position (x-tessera-lsn) a server reported, so that a
// server reading from a replica answers no older than this program's own writes. A unary call the
// server refuses under load (RESOURCE_EXHAUSTED: SERVER_OVERLOADED or RATE_LIMITED) is sent again
// after its RetryInfo delay, whatever the rpc (retry.RetryRefused: refused calls did nothing).
//
//	tessera-go -check-refused-update ...   (against a rate-limited server: an update refused, retried, applied once)
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	oldproto "github.com/golang/protobuf/proto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"tessera.example/client/retry"
	v1 "tessera.example/gen/dashboard/v1"
)

// codec marshals with google.golang.org/protobuf: Debian's grpc 1.33 default codec goes through
// the older github.com/golang/protobuf, which cannot marshal these (APIv2) messages.
type codec struct{}

func (codec) Marshal(v interface{}) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }
func (codec) Unmarshal(data []byte, v interface{}) error {
	return proto.Unmarshal(data, v.(proto.Message))
}
func (codec) Name() string { return "proto" }

func init() { encoding.RegisterCodec(codec{}) }

type failure struct{ reason string }

func (f failure) Error() string { return f.reason }

func expect(ok bool, format string, args ...interface{}) {
	if !ok {
		panic(failure{fmt.Sprintf(format, args...)})
	}
}

func must(err error, what string) {
	if err != nil {
		panic(failure{fmt.Sprintf("%s: %v", what, err)})
	}
}

func step(title string)                      { fmt.Printf("\n== %s\n", title) }
func say(format string, args ...interface{}) { fmt.Printf("   "+format+"\n", args...) }

type services struct {
	dashboards v1.DashboardServiceClient
	widgets    v1.WidgetServiceClient
	queries    v1.QueryServiceClient
	exports    v1.ExportServiceClient
	reports    v1.ReportServiceClient
	alerts     v1.AlertServiceClient
}

func main() {
	address := flag.String("address", envOr("TESSERA_ADDRESS", "127.0.0.1:50051"), "host:port (TESSERA_ADDRESS)")
	token := flag.String("token", os.Getenv("TESSERA_TOKEN"), "an editor's or admin's JWT (TESSERA_TOKEN)")
	checkRefused := flag.Bool("check-refused-update", false, "only check that a rate-limited update is retried once")
	flag.Parse()
	if *token == "" {
		fmt.Fprintln(os.Stderr, "no token: pass -token or set TESSERA_TOKEN")
		os.Exit(2)
	}
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(failure); ok {
				fmt.Fprintf(os.Stderr, "\nFAILED: %s\n", f.reason)
				os.Exit(1)
			}
			panic(r)
		}
	}()

	dialCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	positions := &writePosition{}
	var retried []string
	refusals := retry.Policy{MaxAttempts: 5, OnRetry: func(method, reason string, delay time.Duration) {
		retried = append(retried, fmt.Sprintf("%s %s in %v", method[strings.LastIndex(method, "/")+1:], reason, delay.Round(time.Millisecond)))
	}}
	// Refusals retried outermost: each attempt still carries the latest write position.
	options := []grpc.DialOption{grpc.WithInsecure(), grpc.WithBlock()}
	target := *address
	if strings.Contains(target, ",") {
		target, options = balanced(target, options)
	}
	conn, err := grpc.DialContext(dialCtx, target,
		append(options, grpc.WithChainUnaryInterceptor(refusals.Interceptor(), positions.intercept))...)
	must(err, "connect")
	defer conn.Close()
	s := services{
		v1.NewDashboardServiceClient(conn),
		v1.NewWidgetServiceClient(conn),
		v1.NewQueryServiceClient(conn),
		v1.NewExportServiceClient(conn),
		v1.NewReportServiceClient(conn),
		v1.NewAlertServiceClient(conn),
	}
	base := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+*token)
	ctx, done := context.WithTimeout(base, 5*time.Minute)
	defer done()
	if *checkRefused {
		plain, err := grpc.DialContext(dialCtx, target, options...) // no retries: to spend the budget
		must(err, "connect")
		defer plain.Close()
		refusedUpdate(ctx, s, plain, &retried)
	} else {
		run(ctx, s)
	}
	fmt.Println("\nOK")
}

// balanced dials several "host:port" addresses as one channel with the round_robin policy: each
// call goes to the next server that is up; one that goes away leaves the rotation.
func balanced(addresses string, options []grpc.DialOption) (string, []grpc.DialOption) {
	servers := manual.NewBuilderWithScheme("tessera")
	var state resolver.State
	for _, address := range strings.Split(addresses, ",") {
		if address = strings.TrimSpace(address); address != "" {
			state.Addresses = append(state.Addresses, resolver.Address{Addr: address})
		}
	}
	servers.InitialState(state)
	return servers.Scheme() + ":///servers", append(options,
		grpc.WithResolvers(servers),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
}

// writePosition keeps the highest x-tessera-lsn ("16/B374D848") a server reported in trailers
// and sends it on every later call.
type writePosition struct {
	mu    sync.Mutex
	value uint64
	text  string
}

func parsePosition(text string) (uint64, bool) {
	var high, low uint32
	if n, err := fmt.Sscanf(text, "%X/%X", &high, &low); err != nil || n != 2 {
		return 0, false
	}
	return uint64(high)<<32 | uint64(low), true
}

func (p *writePosition) intercept(ctx context.Context, method string, req, reply interface{},
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	p.mu.Lock()
	if p.text != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-tessera-lsn", p.text)
	}
	p.mu.Unlock()
	var trailer metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Trailer(&trailer))...)
	for _, text := range trailer.Get("x-tessera-lsn") {
		if value, ok := parsePosition(text); ok {
			p.mu.Lock()
			if value > p.value {
				p.value, p.text = value, text
			}
			p.mu.Unlock()
		}
	}
	return err
}

func run(ctx context.Context, s services) {
	tag := fmt.Sprintf("go-%d", time.Now().UnixNano()%1000000000)

	step("A dashboard with one table widget on a saved query")
	query, err := s.queries.CreateQuery(ctx, &v1.CreateQueryRequest{Query: &v1.Query{
		Name: "Admissions per unit (Go)",
		Sql:  "SELECT unit, count(*) AS admissions FROM demo.admissions GROUP BY unit ORDER BY unit",
		Tags: []string{tag},
	}})
	must(err, "CreateQuery")
	board, err := s.dashboards.CreateDashboard(ctx, &v1.CreateDashboardRequest{
		Dashboard: &v1.Dashboard{Title: "From Go", Tags: []string{tag}},
	})
	must(err, "CreateDashboard")
	widget, err := s.widgets.CreateWidget(ctx, &v1.CreateWidgetRequest{Widget: &v1.Widget{
		DashboardId: board.Id,
		Title:       "Per unit",
		Position:    &v1.GridPosition{X: 0, Y: 0, Width: 6, Height: 3},
		Query:       &v1.QueryBinding{QueryId: query.Id},
		Config:      &v1.Widget_Table{Table: &v1.TableConfig{}},
	}})
	must(err, "CreateWidget")
	say("dashboard %s, widget %s (%s)", board.Id, widget.Id, widget.Type)
	expect(widget.Type == v1.WidgetType_WIDGET_TYPE_TABLE, "the widget is a table")

	step("List dashboards by tag")
	listed, err := s.dashboards.ListDashboards(ctx, &v1.ListDashboardsRequest{Tags: []string{tag}, PageSize: 10})
	must(err, "ListDashboards")
	for _, d := range listed.Dashboards {
		say("%s %q version %d", d.Id, d.Title, d.Version)
	}
	expect(len(listed.Dashboards) == 1 && listed.Dashboards[0].Id == board.Id, "exactly this run's dashboard")

	step("Read the widget's data: a miss (COMPUTED), then a hit (MEMORY)")
	first, err := s.widgets.GetWidgetData(ctx, &v1.GetWidgetDataRequest{WidgetId: widget.Id})
	must(err, "GetWidgetData")
	second, err := s.widgets.GetWidgetData(ctx, &v1.GetWidgetDataRequest{WidgetId: widget.Id})
	must(err, "GetWidgetData")
	frame := first.Frame
	units := frame.Columns[0].GetStringValues().GetValues()
	counts := frame.Columns[1].GetInt64Values().GetValues()
	for i := range units {
		say("%-11s %d admissions", units[i], counts[i])
	}
	say("first %s, second %s", first.Source, second.Source)
	expect(frame.RowCount > 0 && len(units) == int(frame.RowCount), "rows of the demo data")
	expect(frame.Columns[0].Name == "unit" && frame.Columns[1].Name == "admissions", "the query's columns")
	expect(first.Source == v1.DataSource_DATA_SOURCE_COMPUTED, "the first read computes")
	expect(second.Source == v1.DataSource_DATA_SOURCE_MEMORY, "the second read is a cache hit")

	step("Invalid input is refused with google.rpc details")
	_, err = s.dashboards.UpdateDashboard(ctx, &v1.UpdateDashboardRequest{
		Dashboard:  &v1.Dashboard{Id: board.Id, Title: ""},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title"}},
	})
	st := status.Convert(err)
	reason, fields := details(st)
	say("%s [%s] %s; fields %v", st.Code(), reason, st.Message(), fields)
	expect(st.Code() == codes.InvalidArgument && reason != "", "INVALID_ARGUMENT with an ErrorInfo reason")
	expect(contains(fields, "dashboard.title"), "the title is named in the field violations")

	step("Export it as a PNG, following the export's watch to its end")
	_, err = s.dashboards.PublishDashboard(ctx, &v1.PublishDashboardRequest{Id: board.Id})
	must(err, "PublishDashboard")
	created, err := s.exports.CreateExport(ctx, &v1.CreateExportRequest{
		DashboardId: board.Id,
		Format:      v1.ExportFormat_EXPORT_FORMAT_PNG,
		Options:     &v1.ExportOptions{WidthPx: 800},
	})
	must(err, "CreateExport")
	job := follow(ctx, s.exports, created)
	expect(job.State == v1.JobState_JOB_STATE_SUCCEEDED, "the export succeeded (%s %v)", job.State, job.Error)

	step("Download it, checking size and sha256")
	data, file := download(ctx, s.exports, job.Id)
	sum := sha256.Sum256(data)
	say("%d bytes, %dx%d px, sha256 %s...", len(data), file.WidthPx, file.HeightPx, file.Sha256[:16])
	expect(int64(len(data)) == file.SizeBytes, "the size announced")
	expect(hex.EncodeToString(sum[:]) == file.Sha256, "the sha256 announced")
	expect(len(data) > 8 && string(data[1:4]) == "PNG", "a PNG file")

	reportAndAlert(ctx, s, board.Id, widget.Id)

	step("Clean up")
	_, err = s.dashboards.DeleteDashboard(ctx, &v1.DeleteDashboardRequest{Id: board.Id})
	must(err, "DeleteDashboard")
	_, err = s.queries.DeleteQuery(ctx, &v1.DeleteQueryRequest{Id: query.Id})
	must(err, "DeleteQuery")
	say("deleted the dashboard and the query")
}

// follow watches an export to a terminal state, reopening a dropped stream with since_revision so
// that no revision is reported twice. Each event is the whole job, so the server may send a later
// revision in place of one it could not replay (server/jobs/revisions.py): revisions only grow.
func follow(ctx context.Context, exports v1.ExportServiceClient, start *v1.ExportJob) *v1.ExportJob {
	latest, since := start, start.Revision
	report(latest)
	for attempt := 0; !terminal(latest.State); attempt++ {
		expect(attempt < 5, "the watch kept dropping")
		stream, err := exports.WatchExport(ctx, &v1.WatchExportRequest{Id: start.Id, SinceRevision: since})
		must(err, "WatchExport")
		for !terminal(latest.State) {
			event, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) || status.Code(err) == codes.Unavailable {
					break // resume after `since`
				}
				must(err, "WatchExport")
			}
			job := event.GetExport()
			if job == nil || job.Revision <= since {
				continue // a heartbeat, or a revision already seen
			}
			latest, since = job, job.Revision
			report(latest)
		}
	}
	return latest
}

func report(job *v1.ExportJob) {
	say("revision %2d %3d%% %-22s %s", job.Revision, job.GetProgress().GetPercent(), job.State, job.Stage)
}

func terminal(state v1.JobState) bool {
	return state == v1.JobState_JOB_STATE_SUCCEEDED || state == v1.JobState_JOB_STATE_FAILED ||
		state == v1.JobState_JOB_STATE_CANCELLED
}

func download(ctx context.Context, exports v1.ExportServiceClient, id string) ([]byte, *v1.ExportFile) {
	stream, err := exports.DownloadExport(ctx, &v1.DownloadExportRequest{Id: id})
	must(err, "DownloadExport")
	var file *v1.ExportFile
	var data []byte
	for {
		part, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		must(err, "DownloadExport")
		if f := part.GetFile(); f != nil {
			file = f
		} else {
			data = append(data, part.GetChunk()...)
		}
	}
	expect(file != nil, "the download announced its file")
	return data, file
}

// details reads ErrorInfo's reason and the BadRequest field violations of a status.
func details(st *status.Status) (string, []string) {
	reason, fields := "", []string{}
	for _, detail := range st.Proto().GetDetails() {
		// Debian's genproto (Status, errdetails) is github.com/golang/protobuf's API: decode by type URL.
		info, bad := &errdetails.ErrorInfo{}, &errdetails.BadRequest{}
		url := detail.GetTypeUrl()
		if strings.HasSuffix(url, "/google.rpc.ErrorInfo") && oldproto.Unmarshal(detail.GetValue(), info) == nil {
			reason = info.Reason
		} else if strings.HasSuffix(url, "/google.rpc.BadRequest") && oldproto.Unmarshal(detail.GetValue(), bad) == nil {
			for _, v := range bad.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	return reason, fields
}

func contains(items []string, want string) bool {
	for _, item := range items {
		if item == want {
			return true
		}
	}
	return false
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

// hooks is a webhook receiver on loopback: every request's signature header and body.
type hooks struct {
	mu       sync.Mutex
	received [][2]string
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.received = append(h.received, [2]string{r.Header.Get("Tessera-Signature"), string(body)})
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// verified says whether `header` (t=<unix>,v1=<hex>) is the HMAC-SHA256 of "<t>.<body>" with secret.
func verified(secret, header, body string) bool {
	parts := map[string]string{}
	for _, part := range strings.Split(header, ",") {
		if kv := strings.SplitN(part, "=", 2); len(kv) == 2 {
			parts[kv[0]] = kv[1]
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts["t"] + "." + body))
	return hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(parts["v1"]))
}

func reportAndAlert(ctx context.Context, s services, boardID, widgetID string) {
	step("Subscribe a webhook to the dashboard, send it now, follow the delivery")
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	must(err, "listen")
	receiver := &hooks{}
	server := &http.Server{Handler: receiver}
	go server.Serve(listener)
	defer server.Close()
	url := fmt.Sprintf("http://%s/hook", listener.Addr())
	sub, err := s.reports.CreateReportSubscription(ctx, &v1.CreateReportSubscriptionRequest{
		Subscription: &v1.ReportSubscription{
			DashboardId: boardID,
			Title:       "From Go, weekly",
			Schedule:    &v1.ReportSchedule{Cron: "0 7 * * 1", TimeZone: "Europe/Paris"},
			Format:      v1.ExportFormat_EXPORT_FORMAT_PNG,
			Recipients:  &v1.ReportRecipients{Webhooks: []string{url}},
		},
	})
	must(err, "CreateReportSubscription")
	expect(sub.WebhookSecret != "", "the webhook secret is shown once, on create")
	delivery, err := s.reports.SendReportNow(ctx, &v1.SendReportNowRequest{Id: sub.Id})
	must(err, "SendReportNow")
	stream, err := s.reports.WatchReportDelivery(ctx, &v1.WatchReportDeliveryRequest{Id: delivery.Id})
	must(err, "WatchReportDelivery")
	var ended *v1.ReportDelivery
	for ended == nil {
		event, err := stream.Recv()
		must(err, "WatchReportDelivery.Recv")
		ended = event.GetDelivery()
	}
	say("delivery %s: %s", ended.Id, ended.State)
	expect(ended.State == v1.DeliveryState_DELIVERY_STATE_DELIVERED, "the report was delivered (%v)", ended.Recipients)
	receiver.mu.Lock()
	got := append([][2]string(nil), receiver.received...)
	receiver.mu.Unlock()
	expect(len(got) == 1, "the webhook arrived once (%d)", len(got))
	expect(verified(sub.WebhookSecret, got[0][0], got[0][1]), "its signature verifies with the secret")
	expect(!verified("another secret", got[0][0], got[0][1]), "and not with another")
	say("the webhook arrived, signed")
	_, err = s.reports.DeleteReportSubscription(ctx, &v1.DeleteReportSubscriptionRequest{Id: sub.Id})
	must(err, "DeleteReportSubscription")

	step("An alert rule on the widget: preview, silence, delete")
	rule, err := s.alerts.CreateAlertRule(ctx, &v1.CreateAlertRuleRequest{Rule: &v1.AlertRule{
		WidgetId:   widgetID,
		Title:      "Admissions over a million",
		Column:     "admissions",
		Reducer:    v1.AlertReducer_ALERT_REDUCER_MAX,
		Comparison: v1.AlertComparison_ALERT_COMPARISON_GREATER,
		Threshold:  1e6,
		Recipients: &v1.ReportRecipients{Webhooks: []string{url}},
	}})
	must(err, "CreateAlertRule")
	preview, err := s.alerts.PreviewAlertRule(ctx, &v1.PreviewAlertRuleRequest{Rule: rule})
	must(err, "PreviewAlertRule")
	say("max(admissions) = %g over %d rows: holds %v", preview.GetValue(), preview.RowCount, preview.Holds)
	expect(preview.RowCount > 0 && !preview.Holds, "the preview reads the widget's rows and the rule does not hold")
	silenced, err := s.alerts.SilenceAlertRule(ctx, &v1.SilenceAlertRuleRequest{
		Id: rule.Id, Until: timestamppb.New(time.Now().Add(time.Hour)),
	})
	must(err, "SilenceAlertRule")
	expect(silenced.SilencedUntil != nil, "silenced for an hour")
	_, err = s.alerts.DeleteAlertRule(ctx, &v1.DeleteAlertRuleRequest{Id: rule.Id})
	must(err, "DeleteAlertRule")
}
